"""One process's run as a state machine with named phases — no locust, no gevent, no clock of its own — and the
worker's message handlers as plain methods, so that every way a run starts and ends is a unit test
(``tests/test_lifecycle.py``), like the master/worker coordination (``sim.run.coordination``).

Phases, in order (a run never goes back)::

    planned ──begin──▶ starting ──start(t0)──▶ running ──schedule_done / abort──▶ complete
       │                  │                        │                                  │
       └──── signal ──────┴──▶ complete            └───────────── halt ───────────────┴──▶ halted ──count──▶ counted

- **planned**: the plan is resolved; nothing sent. **starting**: the load shape has begun it (users spawning).
- **running**: launch 0 is due at ``t0``. **complete**: the schedule is over, or the run was aborted (a
  flood, a threshold, a fatal 403): the loops end and the test is ended. A signal before ``t0`` also
  lands here, with nothing to count.
- **halted**: the schedule was stopped everywhere and work in flight given its grace. Halting a run that was
  still **running** makes it *interrupted* (a STOP, a signal).
- **counted**: the summary is made, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from sim.run.clock import MAX_CLOCK_OFFSET_S, MasterClock
from sim.run.coordination import ACK, REFUSED, Grant
from sim.run.pacer import WorkerLease
from sim.run.plan import PlanMismatch, RunPlan

__all__ = ["Phase", "Lifecycle", "WorkerSide", "WorkerEngine"]

Phase = Literal["planned", "starting", "running", "complete", "halted", "counted"]
_ORDER: tuple[Phase, ...] = ("planned", "starting", "running", "complete", "halted", "counted")


class Lifecycle:
    def __init__(self) -> None:
        self.phase: Phase = "planned"
        self.t0: float | None = None
        """Epoch seconds at which launch 0 is due (None: not started)."""
        self.aborted: str | None = None
        """Why the run was stopped early (a flood, a threshold, a fatal refusal)."""
        self.fatal = False
        """Stopped because it could not go on (not a threshold): a setup problem."""
        self.interrupted = False
        """Stopped from outside (STOP, a signal) while the schedule was still running."""

    def _at_least(self, phase: Phase) -> bool:
        return _ORDER.index(self.phase) >= _ORDER.index(phase)

    @property
    def begun(self) -> bool:
        """The load shape has begun this run (a later START is another run)."""
        return self.phase != "planned"

    @property
    def complete(self) -> bool:
        """The loops (coordination, progress, guard) end; the test is to end."""
        return self._at_least("complete")

    @property
    def halted(self) -> bool:
        return self._at_least("halted")

    @property
    def counted(self) -> bool:
        return self.phase == "counted"

    @property
    def verdict_interrupted(self) -> bool:
        """The summary's ``interrupted``: stopped from outside, and not by flowsim's own abort."""
        return self.interrupted and self.aborted is None

    def begin(self) -> bool:
        """The shape takes this run (a START). False when it was taken already."""
        if self.phase != "planned":
            return False
        self.phase = "starting"
        return True

    def start(self, t0: float) -> None:
        if self.phase not in ("planned", "starting"):
            raise RuntimeError(f"a {self.phase} run cannot start")
        self.t0, self.phase = t0, "running"

    def schedule_done(self) -> bool:
        """Every launch is sent or counted (the master: every worker is done). False if it was over already."""
        if self.phase != "running":
            return False
        self.phase = "complete"
        return True

    def abort(self, reason: str, *, fatal: bool = False) -> bool:
        """Stop early, with the reason; only the first reason counts (False for later ones)."""
        if self.aborted is not None or self.halted:
            return False
        self.aborted, self.fatal = reason, fatal
        if not self.complete:
            self.phase = "complete"
        return True

    def signal(self) -> Literal["end", "halt", "none"]:
        """SIGTERM / SIGINT. Before launch 0: nothing to stop, the run ends as interrupted ("end"). While running:
        stop the schedule and count ("halt"). Later: already on its way out ("none")."""
        if self.phase in ("planned", "starting"):
            self.interrupted = True
            self.phase = "complete"
            return "end"
        return "halt" if self.phase == "running" else "none"

    def halt(self) -> bool:
        """Stop the schedule (once, and only a started run): True when the caller is to stop the fleet and give
        work in flight its grace. A run halted while still running was interrupted."""
        if self.t0 is None or self.halted:
            return False
        self.interrupted = self.interrupted or self.phase == "running"
        self.phase = "halted"
        return True

    @property
    def stop_workers(self) -> bool:
        """After :meth:`halt`: the workers must be told to stop (they do not know the run ended early)."""
        return self.interrupted or self.aborted is not None

    def count(self) -> bool:
        """The run is to be counted now (once; a run that never started has nothing to count). Halts it first."""
        if self.t0 is None or self.counted:
            return False
        self.halt()
        self.phase = "counted"
        return True


class WorkerEngine(Protocol):
    """What a worker's message handlers need of its engine (``sim.run.engine.Engine``)."""

    plan: RunPlan

    def grant(self, grant: Grant) -> None: ...
    def stop(self, grace_s: float | None = None) -> None: ...


class WorkerSide:
    """A worker's handlers of the master's messages, as plain methods. ``send(kind, data)`` answers the master;
    ``prepare(plan, lease, ready)`` sets up this worker's share of a run (its engine; ``ready()`` once its token
    pool is in); ``start(engine, t0)`` begins it; ``finish(engine)`` counts the last one (a run after a run, in the
    web UI)."""

    def __init__(self, me: str, *, send: Callable[[str, dict[str, Any]], None],
                 prepare: Callable[[RunPlan, WorkerLease, Callable[[], None]], WorkerEngine],
                 start: Callable[[WorkerEngine, float], object],
                 finish: Callable[[WorkerEngine], None], log: Callable[..., None], give_up_s: float,
                 clock: MasterClock | None = None) -> None:
        self.me = me
        self.clock = clock or MasterClock()
        """The master's time as read from its messages' ``at``: the engine's clock (``sim.run.clock``)."""
        self.engine: WorkerEngine | None = None
        self.started = False
        """The engine has its ``t0``: it is pacing."""
        self._send, self._prepare, self._start, self._finish, self._log = send, prepare, start, finish, log
        self._give_up_s = give_up_s

    def on_start(self, data: dict[str, Any]) -> None:
        """START: the plan, set up once (refused if this worker's clock is too far from the master's), and ready
        said when the token pool is in; with ``t0`` (at once, or once every worker was ready): begin, once.
        Acknowledged every time, with how far this worker's wall clock is from the master's."""
        self._observe(data)
        if self.engine is None or self.engine.plan.run_id != data["plan"].get("run_id"):
            try:
                plan = RunPlan.from_dict(data["plan"])
                self._check_clock()
            except PlanMismatch as exc:
                self._log("plan.refused", reason=str(exc))
                self._send(REFUSED, {"worker": self.me, "reason": str(exc)})
                return
            if self.engine is not None:  # the last run's engine (web UI: a run after a run)
                self._finish(self.engine)
            self.started = False
            self.engine = self._prepare(plan, WorkerLease(self.me), lambda: self._ready(plan.run_id))
        if data.get("grant"):
            self.engine.grant(Grant.from_dict(data["grant"]))
        if data.get("t0") is not None and not self.started:
            self.started = True
            self._start(self.engine, float(data["t0"]))
        self._send(ACK, {"worker": self.me, **self._offset()})

    def _ready(self, run_id: str) -> None:
        if self.engine is not None and self.engine.plan.run_id == run_id:
            self._send(ACK, {"worker": self.me, "ready": run_id, **self._offset()})

    def on_grant(self, data: dict[str, Any]) -> None:
        self._observe(data)
        if self.engine is not None:
            self.engine.grant(Grant.from_dict(data))
            self._send(ACK, {"worker": self.me, **self._offset()})

    def _observe(self, data: dict[str, Any]) -> None:
        at = data.get("at")
        if isinstance(at, (int, float)) and not isinstance(at, bool):
            self.clock.observe(float(at))

    def _offset(self) -> dict[str, float]:
        return {"clock_offset_s": round(self.clock.offset(), 3)} if self.clock.known else {}

    def _check_clock(self) -> None:
        off = self.clock.offset() if self.clock.known else 0.0
        if abs(off) > MAX_CLOCK_OFFSET_S:
            raise PlanMismatch(f"this worker's wall clock is {abs(off):.1f} s {'behind' if off > 0 else 'ahead of'} "
                               f"the master's (more than {MAX_CLOCK_OFFSET_S:g} s): set its time (NTP) and start "
                               "it again")

    def on_stop(self, _data: dict[str, Any]) -> None:
        """DONE (with the final stats) follows once work in flight has ended or was written as unanswered."""
        if self.engine is not None:
            self.engine.stop(grace_s=self._give_up_s)
