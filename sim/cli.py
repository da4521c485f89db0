"""The ``flowsim`` command: ``serve``, ``run``, ``validate``, ``ledger summary``.

User mistakes print one line and exit 2; no traceback. This module never imports locust: ``run``
starts Locust in child processes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sim.errors import ConfigError, FlowsimError

__all__ = ["main"]

EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"flowsim: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _describe(org: Any) -> dict[str, Any]:
    from sim.platform.schema import variables_schema
    from sim.platform.app import PERM_LAUNCH

    default = next((c for c in org.clients if PERM_LAUNCH in c.permissions), None)
    return {
        "org": {"id": org.id, "name": org.name, "source": org.source},
        # Local test credentials of the simulated org, printed on purpose so clients can log in.
        "client_id": default.id if default else None,
        "client_secret": default.secret if default else None,
        "clients": [{"id": c.id, "name": c.name, "permissions": sorted(c.permissions),
                     "token_lifetime_s": c.token_lifetime_s} for c in org.clients],
        "divisions": [{"id": d.id, "name": d.name} for d in org.divisions],
        "flows": [{"id": f.id, "name": f.name, "type": f.type, "division": org.division(f.division_id).name,
                   "divisionId": f.division_id, "version": f.version,
                   "inputSchema": variables_schema(f, f.inputs, "inputs")} for f in org.flows],
        "settings": {"rate_limit_per_window": org.settings.rate_limit_per_window,
                     "rate_limit_window_s": org.settings.rate_limit_window_s,
                     "strict_unknown_fields": org.settings.strict_unknown_fields},
    }


def _cmd_serve(args: argparse.Namespace) -> int:
    from sim import logs
    from sim.platform.org import default_org, load_org

    org = load_org(args.org) if args.org else default_org()
    if args.describe:
        print(json.dumps(_describe(org), indent=2))
        return EXIT_OK
    from sim.platform.server import bind, serve

    logs.configure(level=args.log_level)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", field="--port") from None
    host, port = sock.getsockname()[:2]

    def announce() -> None:
        # This exact line is what `flowsim run` waits for; keep its shape.
        print(f"flowsim simulator listening on http://{host}:{port}", flush=True)
        logs.get_logger().info("simulator.started", url=f"http://{host}:{port}", org=org.name, seed=args.seed)

    serve(org, sock, seed=args.seed, log_level="warning", announce=announce)
    logs.get_logger().info("simulator.stopped")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flowsim", description="Load and simulation tests for Genesys Cloud flow executions.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", help="run the simulated Genesys Cloud API")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    s.add_argument("--org", help="simulated org TOML file (default: the built-in org)")
    s.add_argument("--seed", type=int, default=0, help="seed for ids, durations, outcomes and faults")
    s.add_argument("--describe", action="store_true", help="print the org as JSON and exit")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.set_defaults(func=_cmd_serve)

    from sim.load.commands import add_commands

    add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"flowsim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FlowsimError as exc:
        print(f"flowsim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("flowsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
