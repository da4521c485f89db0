"""Self-sizing: how many tokens and Locust users (slots) a run needs, from what flowsim knows.

- **Tokens.** The platform limits requests per token (Limits API, ``platform.api`` /
  ``client.credentials.token.rate.per.minute``, 300 by default). A launch is one request; following it
  adds one status poll per poll interval of the flow's duration, plus one. Tokens = requests per minute
  / the limit, with 25 % headroom, split over the load processes (each holds its own pool).
- **Slots.** Little's law: executions in flight = arrival rate × time each one holds a slot (launch
  answer, plus the flow's duration and up to one poll interval when following), with 30 % headroom.

Explicit numbers in the scenario win; when they are too small the run says what it needs. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Sizing", "size", "DEFAULT_TOKEN_LIMIT_PER_MIN", "LAUNCH_ALLOWANCE_S", "MAX_SLOTS"]

DEFAULT_TOKEN_LIMIT_PER_MIN = 300
"""The vendor's default when the org's limit cannot be read."""
LAUNCH_ALLOWANCE_S = 0.5
"""Time a launch holds a slot, allowed for a real org's answer."""
MAX_SLOTS = 10_000
_TOKEN_HEADROOM = 1.25
_SLOT_HEADROOM = 1.3


@dataclass(frozen=True, kw_only=True)
class Sizing:
    tokens_per_client: int
    """Per load process."""
    max_concurrency: int
    """Locust users, for the whole run."""
    explanation: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def size(*, peak_rate_per_s: float, processes: int, follow: bool, poll_interval_s: float, flow_duration_s: float,
         flow_duration_source: str, token_limit_per_min: int, token_limit_source: str,
         tokens_per_client: int | None, max_concurrency: int | None,
         words: tuple[str, str, str] = ("launches", "polls", "execution")) -> Sizing:
    """The sizing for a run, explained in one line each (``None``: auto). ``words``: what a launch, a poll and
    an execution are called (a conversation: session starts, turns, session)."""
    launches_w, polls_w, unit = words
    processes = max(1, processes)
    polls = math.ceil(flow_duration_s / poll_interval_s) + 1 if follow else 0
    requests_per_s = peak_rate_per_s * (1 + polls)
    need_tokens = max(1, math.ceil(math.ceil(requests_per_s * 60 / token_limit_per_min * _TOKEN_HEADROOM) / processes))
    hold_s = LAUNCH_ALLOWANCE_S + (flow_duration_s + poll_interval_s if follow else 0.0)
    need_slots = max(10, math.ceil(peak_rate_per_s * hold_s * _SLOT_HEADROOM))
    warnings = []
    if need_slots > MAX_SLOTS:
        warnings.append(f"{need_slots} slots needed ({peak_rate_per_s:g}/s × {hold_s:.1f} s); capped at {MAX_SLOTS}")
        need_slots = MAX_SLOTS
    polls_text = f" + ≈{peak_rate_per_s * polls:g}/s {polls_w}" if follow else ""
    hold_text = (flow_duration_source if unit != "execution" else
                 "launch + flow " + flow_duration_source + " + a poll" if follow else "launch")
    lines = (
        f"tokens: {peak_rate_per_s:g}/s {launches_w}{polls_text} → {requests_per_s:g} req/s → {need_tokens} token(s) "
        f"per process × {processes} at {token_limit_per_min}/min per token ({token_limit_source})"
        + ("" if tokens_per_client is None else f"; the scenario sets {tokens_per_client}"),
        f"slots: ≈{hold_s:.1f} s per {unit} ({hold_text})"
        f" × {peak_rate_per_s:g}/s → {need_slots} Locust users"
        + ("" if max_concurrency is None else f"; the scenario sets {max_concurrency}"),
    )
    if tokens_per_client is not None and tokens_per_client < need_tokens:
        warnings.append(f"tokens_per_client = {tokens_per_client} is too few for {requests_per_s:g} requests/s: "
                        f"expect 429s; it needs {need_tokens} (or set it to \"auto\")")
    if max_concurrency is not None and max_concurrency < need_slots:
        warnings.append(f"max_concurrency = {max_concurrency} is too few for {peak_rate_per_s:g}/s × {hold_s:.1f} s: "
                        f"expect missed starts; it needs {need_slots} (or set it to \"auto\")")
    return Sizing(tokens_per_client=tokens_per_client or need_tokens, max_concurrency=max_concurrency or need_slots,
                  explanation=lines, warnings=tuple(warnings))
