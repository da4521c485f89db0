"""After a bot conversation run whose script checks intents or slots: the check against the platform's reporting
turns (``sim.results.turn_check``), into the summary. On a flowsim simulator it waits up to 15 s for them, on a
real org up to a minute (its analytics lag behind), with progress on stderr. A step that broke fails the run; a
check the platform could not yet answer says so and does not. Never imports locust."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from sim.errors import FlowsimError, PlatformError

__all__ = ["add_turn_check", "WAIT_SIMULATOR_S", "WAIT_ORG_S"]

WAIT_SIMULATOR_S = 15.0
WAIT_ORG_S = 60.0


def add_turn_check(summary: Any, plan: Any, prepared: Any) -> Any:
    """The summary with its ``turn_check`` (unchanged when no step asks for one, or nothing was sent)."""
    from sim.results.turn_check import check_turns, records_of
    from sim.run.prepare import client_for

    if not any(t.expect.nlu for f in plan.scenario.flows for t in f.turns) or not summary.launched or summary.fatal \
            or summary.interrupted:
        return summary
    client = client_for(plan.scenario, prepared.target)
    try:
        check = check_turns(client, records_of(Path(summary.ledger_path)), sorted({f.id for f in plan.flows}),
                            wait_s=WAIT_SIMULATOR_S if prepared.simulator else WAIT_ORG_S,
                            progress=lambda line: print(line, file=sys.stderr))
    except PlatformError as exc:
        why = "the OAuth client's role needs analytics:botFlowReportingTurn:view" if exc.status == 403 else str(exc)
        check = {"verdict": f"NOT CHECKED: {why}", "failures": {}}
    except FlowsimError as exc:
        check = {"verdict": f"NOT CHECKED: {exc}", "failures": {}}
    finally:
        client.close()
        client.tokens.close()
    if check is None:
        return summary
    return dataclasses.replace(summary, turn_check=check, passed=summary.passed and check["verdict"] != "FAIL")
