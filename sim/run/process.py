"""Child processes that never outlive the ``flowsim`` command, and signals turned into an orderly stop.

Children (the embedded simulator, the Locust master and the workers it forks) run in their own session, so a
terminal's Ctrl-C reaches only the parent, which stops them in order (master first: it writes the
summary); and each asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so a
``kill -9`` of the parent leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["spawn", "terminate", "kill_group", "die_with_parent", "Interrupted", "signals_interrupt", "REPEAT_WINDOW_S"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGTERM this process when ``parent`` dies (Linux): a child between fork and exec, or a worker Locust
    forked (``--processes``; the setting does not survive a fork)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(143)


def spawn(cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
    """Popen in a session (and process group) of its own, terminated by the kernel if this process dies."""
    parent = os.getpid()
    return subprocess.Popen(list(cmd), start_new_session=True, preexec_fn=lambda: die_with_parent(parent), **kw)


def kill_group(p: subprocess.Popen[Any]) -> None:
    """SIGKILL a process from :func:`spawn` and what it forked (its process group) — while it is not yet reaped,
    so that its id cannot have been reused."""
    if p.returncode is None:
        with contextlib.suppress(OSError):
            os.killpg(p.pid, signal.SIGKILL)
    p.kill()


def terminate(procs: Sequence[subprocess.Popen[Any]], *, timeout_s: float) -> None:
    """SIGTERM, wait up to ``timeout_s`` in all, then SIGKILL whatever is left (with what it forked)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(p)
            p.wait()


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; ``signum`` says which (exit status 128 + signum). ``force``: a second one."""

    def __init__(self, signum: int, *, force: bool = False) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.force = force


REPEAT_WINDOW_S = 1.0
"""A signal this soon after the first is the same request delivered twice (the terminal and a ``timeout`` or CI
wrapper both send SIGINT on one Ctrl-C), not a user insisting."""


@contextmanager
def signals_interrupt(clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted`; one more, at least ``REPEAT_WINDOW_S``
    after the first, raises it with ``force`` (an orderly stop takes a few seconds; a user who insists gets
    everything killed). Repeats within the window are ignored."""
    first: list[float] = []

    def handler(signum: int, _frame: Any) -> None:
        now = clock()
        if first and now - first[0] < REPEAT_WINDOW_S:
            return
        first.append(now)
        raise Interrupted(signum, force=len(first) > 1)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
