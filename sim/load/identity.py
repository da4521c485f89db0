"""Test identities that can never reach a real person.

- e-mail on domains reserved for examples (RFC 2606: example.com, example.net, example.org);
- phone numbers only from ranges reserved for fiction: NANP 555-0100..0199 (any area code) and,
  for en_GB, Ofcom's drama range 07700 900000..900999; E.164 formatted.

Faker runs with ``use_weighting=False`` (about 5x cheaper per name, see the load-generator
baseline); the e-mail is built from the name and the identity id instead of from Faker.
"""

from __future__ import annotations

import random
import re
import unicodedata
import uuid
from dataclasses import dataclass


__all__ = ["Identity", "IdentityFactory", "EXAMPLE_DOMAINS", "is_fictional_phone", "warm"]

EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
# Area codes in service; 555-01XX is reserved for fiction in every one of them.
_NANP_AREA_CODES = (202, 206, 212, 303, 312, 415, 503, 512, 617, 702, 808, 919)
_FICTIONAL_PHONE = re.compile(r"^(\+1[2-9]\d\d55501\d\d|\+447700900\d\d\d)$")


def is_fictional_phone(phone: str) -> bool:
    """True when ``phone`` is an E.164 number from a range reserved for fiction."""
    return bool(_FICTIONAL_PHONE.match(phone))


@dataclass(frozen=True, slots=True)
class Identity:
    """One synthetic person; ``id`` is unique per run across users and workers."""

    id: str
    seq: int
    first_name: str
    last_name: str
    email: str
    phone: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def _ascii_slug(text: str) -> str:
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "", flat) or "user"


class IdentityFactory:
    """Makes identities. With a ``seed``, identity ``seq`` is the same in every run (and on every worker)."""

    def __init__(self, *, locale: str = "en_US", seed: int | None = None) -> None:
        from faker import Faker  # here, not at the top: a Locust master imports this module and never needs it

        self._faker = Faker(locale, use_weighting=False)
        self._seed = seed
        self._rng = random.Random(seed)
        self._uk = locale.lower().replace("-", "_") == "en_gb"

    def make(self, seq: int) -> Identity:
        if self._seed is not None:
            mixed = self._seed * 1_000_003 + seq
            self._faker.seed_instance(mixed)
            self._rng.seed(mixed)
            ident = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        else:
            ident = str(uuid.uuid4())
        first, last = self._faker.first_name(), self._faker.last_name()
        domain = EXAMPLE_DOMAINS[self._rng.randrange(3)]
        email = f"{_ascii_slug(first)}.{_ascii_slug(last)}.{ident[:8]}@{domain}"
        if self._uk:
            phone = f"+447700900{self._rng.randrange(1000):03d}"
        else:
            phone = f"+1{_NANP_AREA_CODES[self._rng.randrange(len(_NANP_AREA_CODES))]}55501{self._rng.randrange(100):02d}"
        return Identity(id=ident, seq=seq, first_name=first, last_name=last, email=email, phone=phone)


def warm(locale: str = "en_US") -> None:
    """Import Faker and load ``locale``'s providers now (~0.15 s), ahead of the first identity: a Locust process
    that will make identities does it while it waits for its plan, not between the plan and launch 0."""
    from faker import Faker

    Faker(locale, use_weighting=False)
