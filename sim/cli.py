"""The ``flowsim`` command: every subcommand's options and help. Handlers: ``sim.commands``, ``sim.run_command``.

User mistakes print one line and exit 2; no traceback. This module never imports locust: ``run``
starts Locust in child processes.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from sim import __version__, commands, run_command
from sim.errors import EXIT_USAGE, ConfigError, FlowsimError
from sim.help import DETAILS
from sim.logs import JSON_ENV

__all__ = ["main", "MAX_WORKERS", "build_parser"]


def _cmd(sub: Any, name: str, help: str, key: str | None = None) -> Any:
    """A subcommand whose --help has its description, examples and exit codes (``sim.help``)."""
    what, examples, codes = DETAILS[key or name]
    return sub.add_parser(name, help=help, description=what, formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog=f"examples:\n{_indent(examples)}\n\nexit codes:\n{_indent(codes)}")


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"flowsim: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _number(kind: type[int] | type[float], *, low: float | None = None, high: float | None = None,
            above: float | None = None, what: str = "a number") -> Any:
    """An argparse type: a finite number of ``kind`` within bounds, or a one-line error."""
    def parse(value: str) -> int | float:
        try:
            n = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None
        if (not math.isfinite(n) or (low is not None and n < low) or (high is not None and n > high)
                or (above is not None and n <= above)):
            bounds = (f"> {above:g}" if above is not None else f">= {low:g}" if high is None
                      else f"{low:g} to {high:g}")
            raise argparse.ArgumentTypeError(f"must be {what} {bounds}, got {value!r}")
        return n
    return parse


_port = _number(int, low=0, high=65535, what="a port (0 picks a free one)")
_rate = _number(float, above=0, what="a finite number")
_count = _number(int, low=0, what="a whole number")
MAX_WORKERS = 256
"""Worker processes flowsim will start on one machine, whatever --allow-many-workers says."""


def _live_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--approval", help="against a real org: the vendor's approval reference for this load test "
                                      "(or [live] approval in the scenario)")
    p.add_argument("--outside-window", action="store_true",
                   help="run outside 23:00-05:00 region time: another window was agreed with the vendor")


def _latency_ms(text: str) -> tuple[float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give MEDIAN or MEDIAN,P99 in ms, e.g. 100 or 100,150") from None
    median, p99 = parts[0], parts[-1]
    if len(parts) > 2 or not 0 <= median <= p99 <= 60_000:
        raise argparse.ArgumentTypeError(f"{text!r}: give MEDIAN or MEDIAN,P99 in ms, 0 <= MEDIAN <= P99 <= 60000")
    return median, p99


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flowsim", description="Load and simulation tests for Genesys Cloud flow executions.")
    p.add_argument("--version", action="version", version=f"flowsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = _cmd(sub, "serve", "run the simulated Genesys Cloud API")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 picks a free one)")
    s.add_argument("--org", help="simulated org TOML file (default: the built-in org)")
    s.add_argument("--seed", type=int, default=0, help="seed for ids, durations, outcomes and faults")
    s.add_argument("--describe", action="store_true", help="print the org as JSON and exit")
    s.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM); needs --tls-key")
    s.add_argument("--tls-key", help="the certificate's private key (PEM)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="the simulator's log level (default info)")
    s.add_argument("--latency-ms", type=_latency_ms, metavar="MEDIAN[,P99]",
                   help="answer every request (OAuth and admin included) after a round trip drawn from this "
                        "log-normal, like a region far away; replaces the org file's [network] latency_ms")
    s.set_defaults(func=commands.serve)

    _add_load_commands(sub)
    return p


def _pct(share: float) -> str:
    return f"{share:.0%}".replace("%", "%%")  # argparse help is %-formatted


def _share(text: str) -> float:
    """A tolerance: ``20%`` or ``0.2`` (never ``20``, which could mean either 20 % or 2000 %)."""
    pct = text.strip().endswith("%")
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share: write 20% or 0.2") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite share >= 0")
    if pct:
        return value / 100
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is ambiguous: write {value:g}% for {value:g} percent, or a "
                                         "fraction (0.5 = 50%)")
    return value


def _listen_address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT with a port in 1-65535 (e.g. 127.0.0.1:9646)")
    return text


def _add_load_commands(sub: Any) -> None:
    _add_run(sub)
    _add_validate_and_capacity(sub)
    _add_compare(sub)
    _add_checks(sub)


def _add_run(sub: Any) -> None:
    r = _cmd(sub, "run", "run a scenario headless with Locust")
    r.add_argument("scenario", nargs="?", default="scenarios/smoke.toml", help="scenario TOML (default smoke)")
    r.add_argument("--target", help="embedded (default), a region such as us_east_1, or a base URL")
    r.add_argument("--rate", type=_rate, help="one constant arrival rate, launches/s (replaces the stages)")
    r.add_argument("--duration", help="how long, e.g. 20s, 5m (with --rate, or alone: the peak rate that long)")
    r.add_argument("--workers", type=_count, default=0, help="Locust workers: master + N local worker processes "
                   "(at most 2 per core unless --allow-many-workers)")
    r.add_argument("--allow-many-workers", action="store_true",
                   help=f"allow more than 2 workers per core (up to {MAX_WORKERS}): they will compete for the cores")
    r.add_argument("--summary-json", help="write the run summary JSON here")
    r.add_argument("--html", help="write flowsim's HTML report here")
    r.add_argument("--junit", help="write JUnit XML here: each threshold and run invariant a test case (CI)")
    r.add_argument("--csv-series", help="write flowsim's per-second series as CSV here")
    r.add_argument("--log-json", action="store_true",
                   help="log lines as JSON (one object per line, for log shippers); default: plain key=value lines")
    r.add_argument("--plain", action="store_true",
                   help="progress as a log line every 5 s even on a terminal (default there: a live table, "
                        "redrawn every second; piped output and --log-json always get the lines)")
    r.add_argument("--webhook", type=_listen_address, metavar="HOST:PORT",
                   help="Open Messaging: where flowsim's webhook receiver listens (replaces [messaging] listen)")
    r.add_argument("--webhook-url", metavar="URL",
                   help="Open Messaging: the public URL the platform posts replies to (an ingress or tunnel in "
                        "front of --webhook; replaces [messaging] public_url)")
    r.add_argument("--prometheus", type=_listen_address, metavar="HOST:PORT",
                   help="serve live metrics for Prometheus at http://HOST:PORT/metrics while the run lasts "
                        "(e.g. 127.0.0.1:9646; Grafana dashboard: dashboards/flowsim-grafana.json)")
    r.add_argument("--locust-html", help="also write Locust's own HTML report here")
    r.add_argument("--csv", help="Locust's CSV prefix")
    r.add_argument("--run-id", help="run id (default: generated)")
    r.add_argument("--ledger-dir", default="runs", help="ledgers go to <dir>/<run_id>/ (default runs)")
    _live_options(r)
    r.set_defaults(func=run_command.run)



def _add_validate_and_capacity(sub: Any) -> None:
    v = _cmd(sub, "validate", "check a scenario and preflight its payloads against the target")
    v.add_argument("scenario", help="scenario TOML")
    v.add_argument("--target", help="embedded (default), a region, or a base URL")
    v.set_defaults(func=commands.validate)

    c = _cmd(sub, "capacity", "find the highest arrival rate that meets the SLO")
    c.add_argument("scenario", help="scenario TOML (its flows, limits and settings; stages are replaced)")
    c.add_argument("--target", help="embedded (default), a region, or a base URL")
    c.add_argument("--slo-p95-ms", type=_number(float, above=0, what="a latency in ms"), default=500.0,
                   help="p95 launch latency limit, ms (default 500)")
    c.add_argument("--max-error-rate", type=_number(float, low=0, high=1, what="a share"), default=0.01,
                   help="share of launches failed at first attempt, 0 to 1 (default 0.01)")
    c.add_argument("--start", type=_rate, default=5.0, help="first step, launches/s (default 5)")
    c.add_argument("--max", type=_rate, default=200.0, help="never go above, launches/s (default 200)")
    c.add_argument("--step-duration", default="20s", help="hold each step this long (default 20s)")
    c.add_argument("--precision", type=_number(float, above=0, what="a share below 1"), default=0.05,
                   help="stop bisecting within this share (default 0.05)")
    c.add_argument("--workers", type=_count, default=0, help="Locust workers per step (default 0: one process; "
                   "at most 2 per core unless --allow-many-workers)")
    c.add_argument("--allow-many-workers", action="store_true",
                   help=f"allow more than 2 workers per core (up to {MAX_WORKERS})")
    c.add_argument("--ledger-dir", default="runs", help="ledgers go to <dir>/<run_id>-s<step>/ (default runs)")
    c.add_argument("--summary-json", help="write the capacity result JSON here")
    c.add_argument("--html", help="write the capacity HTML report here")
    _live_options(c)
    c.set_defaults(func=commands.capacity)



def _add_compare(sub: Any) -> None:
    from sim.results.tolerances import Tolerances

    cmp_ = _cmd(sub, "compare", "compare two summaries; exit 1 when B regressed beyond tolerances")
    cmp_.add_argument("a", help="baseline summary JSON (or flowsim nlu --json)")
    cmp_.add_argument("b", help="candidate summary JSON (or flowsim nlu --json)")
    t = Tolerances()
    share = "a percentage (20%%) or a fraction (0.2); a bare number above 1 is refused as ambiguous"
    cmp_.add_argument("--latency-rel", type=_share, default=t.latency_rel, metavar="SHARE",
                      help=f"relative latency rise allowed: {share} (default {_pct(t.latency_rel)})")
    cmp_.add_argument("--latency-abs-ms", type=_number(float, low=0), default=t.latency_abs_ms, metavar="MS",
                      help=f"and absolute latency rise allowed, ms (default {t.latency_abs_ms:g})")
    cmp_.add_argument("--error-rate-abs", type=_share, default=t.error_rate_abs, metavar="SHARE",
                      help=f"error-rate rise allowed, in points: {share} (default {_pct(t.error_rate_abs)})")
    cmp_.add_argument("--rate-rel", type=_share, default=t.rate_rel, metavar="SHARE",
                      help=f"relative rate drop allowed: {share} (default {_pct(t.rate_rel)})")
    cmp_.add_argument("--f1-abs", type=_share, default=0.02, metavar="SHARE",
                      help="two NLU results: F1 drop allowed, macro and per intent (default 0.02)")
    cmp_.set_defaults(func=commands.compare)

    rep = _cmd(sub, "report", "render the HTML report of a run or capacity summary JSON")
    rep.add_argument("summary", help="summary JSON (flowsim run/capacity --summary-json)")
    rep.add_argument("--out", required=True, help="HTML file to write")
    rep.set_defaults(func=commands.report)



def _add_checks(sub: Any) -> None:
    an = _cmd(sub, "analytics", "check where the platform's analytics counted a run (vs its ledger)")
    an.add_argument("run", help="a run id (under --ledger-dir) or a run directory")
    an.add_argument("--ledger-dir", default="runs", help="where run directories are (default runs)")
    an.add_argument("--target", help="the platform to ask (default: the run's own target)")
    an.add_argument("--wait", type=_number(float, low=0, what="seconds"), default=60.0,
                    help="wait up to this long for analytics to catch up with the ledger (default 60)")
    an.set_defaults(func=commands.analytics)

    nl = _cmd(sub, "nlu", "NLU regression: each utterance of the scenario's [nlu] sets through the bot's detect")
    nl.add_argument("scenario", help="a conversation scenario with [utterances] and [nlu]")
    nl.add_argument("--target", help="embedded (default: the scenario's), a region, or a base URL")
    nl.add_argument("--json", help="write every detection and the figures as JSON here")
    nl.set_defaults(func=commands.nlu)

    cl = _cmd(sub, "cleanup", "remove what an Open Messaging run left on the platform (its external contacts)")
    cl.add_argument("run", help="a run id (under --ledger-dir) or a run directory")
    cl.add_argument("--ledger-dir", default="runs", help="where run directories are (default runs)")
    cl.add_argument("--target", help="the platform to clean (default: the run's own target)")
    cl.add_argument("--yes", action="store_true", help="delete them (default: a dry run that only says what would go)")
    cl.set_defaults(func=commands.cleanup)

    led = sub.add_parser("ledger", help="ledger tools")
    lsub = led.add_subparsers(dest="ledger_command", required=True)
    s = _cmd(lsub, "summary", "reconcile a run's ledger", "ledger summary")
    s.add_argument("run", help="a run id (under --ledger-dir), a run directory or a ledger file")
    s.add_argument("--ledger-dir", default="runs", help="where run directories are (default runs)")
    s.add_argument("--target", help="a flowsim simulator URL: also reconcile against what it received")
    s.add_argument("--json", action="store_true", help="print the figures as JSON (default: in words)")
    s.set_defaults(func=commands.ledger_summary)
    mg = _cmd(lsub, "merge", "fold workers' local ledger copies into a run's ledger (each line once)", "ledger merge")
    mg.add_argument("run", help="a run id (under --ledger-dir) or a run directory")
    mg.add_argument("files", nargs="+", help="a worker's local copy: <run>/local/ledger-<host>-<pid>.jsonl")
    mg.add_argument("--ledger-dir", default="runs", help="where run directories are (default runs)")
    mg.set_defaults(func=commands.ledger_merge)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "log_json", False):
        os.environ[JSON_ENV] = "1"  # this process and every Locust process it starts
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
        return 128 + signal.SIGINT
    except BaseException as exc:
        from sim.run.process import Interrupted

        if isinstance(exc, Interrupted):
            print(f"flowsim: interrupted ({exc})", file=sys.stderr)
            return 128 + exc.signum
        raise


if __name__ == "__main__":
    raise SystemExit(main())
