"""The placeholder syntax shared by launch inputs and conversation lines: ``{identity.full_name}``, plain names
only (the values are filled by ``sim.load.payload.template_value``)."""

from __future__ import annotations

import string

__all__ = ["placeholders"]


def placeholders(text: str) -> list[str]:
    """The placeholder names in a template; ValueError, in words, for unbalanced braces, a ``!conversion`` or a
    ``:format`` (a placeholder is a plain name: ``{identity.full_name}``)."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{text[:80]!r}: {exc} (write a literal brace as {{{{ or }}}})") from None
    for _literal, name, spec, conversion in parts:
        if name is not None and (spec or conversion):
            raise ValueError(f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}: a "
                             f"placeholder takes no !conversion or :format; write {{{name}}}")
        if name == "":
            raise ValueError(f"{text[:80]!r}: an empty placeholder {{}}; name a field, e.g. {{identity.id}}")
    return [name for _, name, _, _ in parts if name]
