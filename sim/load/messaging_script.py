"""An Open Messaging scenario's data (``kind = "messaging"``, API reference §11): the ``[messaging]`` table (which
integration the customers write to, where flowsim's webhook receiver listens, how long a customer waits for
replies) and each flow's script — ``[[flows.messages]]``: what the customer writes, and what the replies to it
must be. Data only: the conversation itself is ``sim.load.messaging``.

A customer writes one of a message's alternatives (chosen at random, seeded per conversation; templated like
launch inputs), then reads every reply until none has come for ``settle_s`` (or none at all within
``reply_timeout_s``). The replies' texts are checked against the message's ``expect``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sim._toml import TableReader
from sim.load.breaks import broken
from sim.load.captures import check_lines, parse_captures, pattern
from sim.load.utterances import lines_for

__all__ = ["ReplyExpect", "MessageSpec", "MessagingSpec", "parse_messages", "parse_messaging", "ENDS", "SENDERS",
           "messaging_from_dict"]

ENDS = ("transferred", "no_reply", "script_ended")
"""How a customer sees its conversation end: a reply said it is handed to an agent (``transferred_when``), a
message went unanswered for ``reply_timeout_s``, or the script had nothing more to say. (Open Messaging tells a
customer nothing when a flow disconnects: that reads as ``script_ended``.)"""
SENDERS = ("Bot", "Human")
"""``originatingEntity`` of an outbound message."""


@dataclass(frozen=True, kw_only=True)
class ReplyExpect:
    """What the replies to one customer message must be; None / empty: not checked. Texts are compared without
    regard to case, in the replies' texts joined by spaces."""

    contains: str | None = None
    regex: str | None = None
    """Searched (``re.search``) in the joined texts."""
    not_contains: str | None = None
    one_of: tuple[str, ...] = ()
    """At least one of these is contained."""
    quick_replies: tuple[str, ...] = ()
    """Quick-reply options that must be offered (among all the replies' options)."""
    sender: str | None = None
    """Every reply's ``originatingEntity`` (Bot or Human)."""
    ends: str | None = None
    """How the conversation must end after this message (one of :data:`ENDS`)."""
    capture: dict[str, str] = field(default_factory=dict)
    """Values taken from the replies for later messages (``sim.load.captures``)."""

    def failures(self, texts: list[str], quick: list[str], senders: list[str]) -> list[dict[str, str]]:
        """What in these replies breaks this expectation (``sim.load.breaks.broken``)."""
        out: list[dict[str, str]] = []
        joined = " ".join(texts)
        low = joined.lower()
        shown = f"{joined[:120]!r}"
        if self.contains is not None and self.contains.lower() not in low:
            out.append(broken("contains", self.contains, joined, f"replies {shown} do not contain {self.contains!r}"))
        if self.regex is not None and re.search(self.regex, joined, re.IGNORECASE) is None:
            out.append(broken("regex", self.regex, joined, f"replies {shown} do not match /{self.regex}/"))
        if self.not_contains is not None and self.not_contains.lower() in low:
            out.append(broken("not_contains", self.not_contains, joined, f"replies {shown} contain {self.not_contains!r}"))
        if self.one_of and not any(o.lower() in low for o in self.one_of):
            out.append(broken("one_of", list(self.one_of), joined,
                              f"replies {shown} contain none of {list(self.one_of)!r}"))
        missing = [q for q in self.quick_replies if q.lower() not in {x.lower() for x in quick}]
        if missing:
            out.append(broken("quick_replies", list(self.quick_replies), quick, f"quick replies {quick!r} lack {missing!r}"))
        if self.sender is not None and any(s != self.sender for s in senders):
            out.append(broken("sender", self.sender, sorted(set(senders)),
                              f"replies from {sorted(set(senders))!r}, expected {self.sender}"))
        return out


@dataclass(frozen=True, kw_only=True)
class MessageSpec:
    say: tuple[str, ...]
    """Alternatives, one chosen at random per conversation; templates like launch inputs."""
    expect: ReplyExpect = ReplyExpect()
    pick: str = "random"
    """How a conversation picks its line: at random, or ``cycle`` (the seq-th: ``sim.load.utterances``)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MessageSpec:
        e = dict(d.get("expect", {}))
        for k in ("one_of", "quick_replies"):
            e[k] = tuple(e.get(k, ()))
        return cls(say=tuple(d["say"]), expect=ReplyExpect(**e), pick=d.get("pick", "random"))


@dataclass(frozen=True, kw_only=True)
class MessagingSpec:
    """The ``[messaging]`` table."""

    integration: str
    """The Open Messaging integration's id: customers' messages are posted to it."""
    secret_env: str = "FLOWSIM_WEBHOOK_SECRET"
    """The environment variable holding the integration's webhook signature secret (never in the file). Against
    the embedded simulator, unset: the built-in test integration's."""
    listen: str = "127.0.0.1:0"
    """Where flowsim's webhook receiver listens (HOST:PORT; port 0: a free one)."""
    public_url: str | None = None
    """The URL the platform posts replies to (an ingress or tunnel in front of ``listen``); None: the receiver's
    own URL (the embedded simulator's integration is pointed at it)."""
    tls_cert: str | None = None
    tls_key: str | None = None
    reply_timeout_s: float = 10.0
    """A message with no reply this long ends the conversation (``no_reply``)."""
    settle_s: float = 1.0
    """After a reply, the customer waits this long for more before it writes again."""
    transferred_when: str | None = None
    """A reply containing this (any case) means the flow handed the customer to an agent (``transferred``)."""
    id_type: str = "Opaque"
    tag_conversations: bool = True
    """Tag each conversation with the run (``PUT /api/v2/conversations/{id}/tags``): one more request each."""


def messaging_from_dict(d: dict[str, Any] | None) -> MessagingSpec | None:
    return MessagingSpec(**d) if d else None


def _texts(t: TableReader, key: str, fields: tuple[str, ...], captured: set[str],
           from_set: tuple[tuple[str, ...], str] | None = None) -> tuple[str, ...]:
    say = list(from_set[0]) if from_set else t.get(key, (list, str), [])
    say = [say] if isinstance(say, str) else say
    if not say or not all(isinstance(s, str) and s.strip() for s in say):
        raise t.fail(key, "needs what the customer writes: a sentence or a list of alternatives (non-empty strings)")
    check_lines(t, key, say, fields, captured)
    return tuple(say)


def _strings(e: TableReader, key: str) -> tuple[str, ...]:
    v = e.get(key, (list, str), [])
    v = [v] if isinstance(v, str) else v
    if not all(isinstance(x, str) and x for x in v):
        raise e.fail(key, "must be a string or a list of non-empty strings")
    return tuple(v)


def parse_messages(r: TableReader, template_fields: tuple[str, ...], sets: dict[str, tuple[str, ...]] | None = None,
                   seed: int | None = None) -> tuple[MessageSpec, ...]:
    out = []
    captured: set[str] = set()
    for t in r.list_of_tables("messages"):
        t.check_keys({"say", "expect", "say_from", "pick"})
        from_set = lines_for(t, sets or {}, seed)
        say = _texts(t, "say", template_fields, captured, from_set)
        e = t.sub("expect")
        expect = ReplyExpect()
        if e is not None:
            e.check_keys({"contains", "regex", "not_contains", "one_of", "quick_replies", "sender", "ends", "capture"})
            expect = ReplyExpect(contains=e.get("contains", str, None), regex=pattern(e, "regex"),
                                 not_contains=e.get("not_contains", str, None), one_of=_strings(e, "one_of"),
                                 quick_replies=_strings(e, "quick_replies"),
                                 sender=e.get("sender", str, None, choices=SENDERS),
                                 ends=e.get("ends", str, None, choices=ENDS), capture=parse_captures(e))
            captured |= set(expect.capture)
        out.append(MessageSpec(say=say, expect=expect, pick=from_set[1] if from_set else "random"))
    return tuple(out)


def parse_messaging(m: TableReader) -> MessagingSpec:
    """The ``[messaging]`` table, checked."""
    m.check_keys({"integration", "secret_env", "listen", "public_url", "tls_cert", "tls_key", "reply_timeout_s",
                  "settle_s", "transferred_when", "id_type", "tag_conversations"})
    integration = m.get("integration", str, "")
    if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", integration):
        raise m.fail("integration", "is required: the Open Messaging integration's id (a UUID)")
    listen = m.get("listen", str, "127.0.0.1:0")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise m.fail("listen", f"must be HOST:PORT (port 0: a free one), got {listen[:60]!r}")
    public = m.get("public_url", str, None) or None
    if public is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", public):
        raise m.fail("public_url", f"must be an http(s) URL, got {public[:80]!r}")
    cert, key = m.get("tls_cert", str, None), m.get("tls_key", str, None)
    if (cert is None) != (key is None):
        raise m.fail("tls_cert" if cert is None else "tls_key", "TLS needs both tls_cert and tls_key")
    timeout = m.get("reply_timeout_s", float, 10.0, minimum=0.1)
    settle = m.get("settle_s", float, 1.0, minimum=0.0)
    if settle >= timeout:
        raise m.fail("settle_s", f"must be shorter than reply_timeout_s ({timeout:g} s)")
    env = m.get("secret_env", str, "FLOWSIM_WEBHOOK_SECRET")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", env):
        raise m.fail("secret_env", "must name an environment variable")
    return MessagingSpec(integration=integration, secret_env=env, listen=listen, public_url=public, tls_cert=cert,
                         tls_key=key, reply_timeout_s=timeout, settle_s=settle,
                         transferred_when=m.get("transferred_when", str, None) or None,
                         id_type=m.get("id_type", str, "Opaque", choices=("Opaque", "Email", "Phone")),
                         tag_conversations=m.get("tag_conversations", bool, True))

