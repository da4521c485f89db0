"""``python -m sim.platform [--port N] [--org FILE] [--seed N] [--log-level L]``: the simulator alone, as
``flowsim run`` starts it for its embedded target. It imports only what serving needs (not the CLI, the load
generator or the reports), so the embedded target is up ~0.3 s sooner than through ``flowsim serve``; that
command (with TLS, latency and ``--describe``) is the one users run."""

from __future__ import annotations

import argparse
import sys

from sim import logs
from sim.errors import EXIT_USAGE, FlowsimError
from sim.platform.org import default_org, load_org
from sim.platform.server import bind, serve_announced

__all__ = ["main"]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m sim.platform", description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--org")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    a = p.parse_args()
    logs.configure(level=a.log_level)
    try:
        org = load_org(a.org) if a.org else default_org()
        sock = bind("127.0.0.1", a.port)
    except (FlowsimError, OSError) as exc:  # one line, as `flowsim serve` says it
        print(f"flowsim: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    serve_announced(org, sock, seed=a.seed)


if __name__ == "__main__":
    main()
