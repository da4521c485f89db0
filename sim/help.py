"""What each subcommand's ``--help`` says beyond its options: what it does, examples, and its exit codes."""

from __future__ import annotations

__all__ = ["DETAILS"]

_USAGE = "2  a mistake in the command, scenario or environment (one line says which), or a setup problem (403)"

DETAILS: dict[str, tuple[str, str, str]] = {
    # name: (what it does, examples, exit codes)
    "serve": (
        "Serve the simulated Genesys Cloud API (OAuth, flows and their executions, analytics, bots, rate limits,\n"
        "faults) on loopback. The org file (--org) says which flows, bots, clients, faults and capacity knees it\n"
        "has: see the README's 'The simulator's org file'.",
        "flowsim serve --port 8080\n"
        "flowsim serve --org my-org.toml --seed 7 --latency-ms 50,120\n"
        "flowsim serve --org my-org.toml --describe      # the org as JSON: flows, faults, knees, durations",
        "0  stopped by SIGINT/SIGTERM\n" + _USAGE),
    "run": (
        "Run a scenario: distinct test identities launch flows (or hold bot conversations) at the scenario's\n"
        "arrival rate, every launch tagged and written to the run's ledger; the summary, judged against the\n"
        "scenario's [thresholds], ends with RESULT. The embedded simulator is the default target.",
        "flowsim run scenarios/smoke.toml\n"
        "flowsim run scenarios/smoke.toml --rate 20 --duration 2m --workers 2 --html report.html\n"
        "flowsim run scenarios/smoke.toml --target us_east_1 --approval CASE-1234 --junit junit.xml",
        "0  PASS\n1  FAIL (a threshold failed, or the run was aborted by abort_on_fail)\n" + _USAGE
        + "\n130/143  interrupted (SIGINT/SIGTERM): the summary covers what was sent"),
    "validate": (
        "Check a scenario without load: the file, the target, credentials, each flow (type, division, published\n"
        "version) and a sample payload against the flow's input schema.",
        "flowsim validate scenarios/smoke.toml\nflowsim validate scenarios/smoke.toml --target us_east_1",
        "0  every flow ready\n1  a flow has a problem (listed)\n" + _USAGE),
    "capacity": (
        "Find the highest arrival rate that meets the SLO: steps up geometrically from --start until a step fails,\n"
        "then bisects to --precision. Each step is a real run with its own ledger. A step fails the error SLO on\n"
        "at least 3 failed launches, and is lengthened (up to 10x --step-duration) until it has enough launches\n"
        "for that to stand for the SLO (300 at 1%).",
        "flowsim capacity scenarios/smoke.toml --start 5 --max 200 --slo-p95-ms 300 --html capacity.html",
        "0  a sustainable rate was found\n1  no step passed\n" + _USAGE),
    "compare": (
        "Compare two run (or capacity) summaries: latency, error and rate figures side by side; exit 1 when B\n"
        "regressed beyond the tolerances (a latency must rise by both the relative and the absolute amount).\n"
        "Two flowsim nlu --json results: the utterances that changed intent, F1 per intent and macro (--f1-abs).",
        "flowsim compare baseline.json candidate.json\nflowsim compare a.json b.json --latency-rel 10% --rate-rel 2%\n"
        "flowsim compare nlu-before.json nlu-after.json --f1-abs 0.05",
        "0  no regression\n1  B regressed\n" + _USAGE),
    "report": (
        "Render the self-contained HTML report (inline SVG charts, no scripts) of a summary JSON.",
        "flowsim report summary.json --out report.html",
        "0  written\n" + _USAGE),
    "nlu": (
        "NLU regression without conversations: every utterance of the scenario's [nlu] sets (utterance files, each\n"
        "mapped to the intent it must be understood as) goes to the bot flow's NLU domain version (detect), at\n"
        "[nlu] rate. Prints a confusion matrix, precision/recall/F1 per intent and macro, a confidence histogram,\n"
        "close calls and wrong detections; [nlu] min_macro_f1 / min_recall set the exit code.",
        "flowsim nlu scenarios/bot-conversation.toml\nflowsim nlu scenarios/bot-conversation.toml --json nlu.json",
        "0  every threshold met\n1  a threshold failed\n" + _USAGE),
    "cleanup": (
        "Remove what an Open Messaging run left on the platform: the external contacts identity resolution made from\n"
        "its customers' from.id (they persist 60 days or more). Only contacts whose identifier is one of the run's\n"
        "customer ids in its ledger are touched. A dry run unless --yes; what was deleted goes into the run's ledger.",
        "flowsim cleanup 20261130103722-642e --target http://127.0.0.1:8080\n"
        "flowsim cleanup 20261130103722-642e --yes",
        "0  nothing to delete, a dry run, or every contact deleted\n1  some deletions failed (listed)\n" + _USAGE),
    "analytics": (
        "Where did the platform's analytics count a run? Its executions (or bot sessions) against its ledger and\n"
        "other flowsim runs' ledgers, waiting a bounded time for analytics to catch up: the separation proof.",
        "flowsim analytics 20261130103722-642e\nflowsim analytics 20261130103722-642e --target http://127.0.0.1:8080",
        "0  SEPARATED\n1  not separated, not caught up, or unproven\n" + _USAGE),
    "ledger summary": (
        "Reconcile a run's ledger: what was launched, answered and followed, by status; with --target (a flowsim\n"
        "simulator) also against what the target received. --json prints the figures as JSON.",
        "flowsim ledger summary 20261130103722-642e\nflowsim ledger summary runs/20261130103722-642e --json",
        "0  reconciled\n1  the ledger disagrees with the target\n" + _USAGE),
    "ledger merge": (
        "Fold workers' local ledger copies (<run>/local/ledger-<host>-<pid>.jsonl on each worker's host) into the\n"
        "run's ledger: a line the run's ledger has is skipped, a line of another run refused, the rest written once\n"
        "to ledger-merged-<n>.jsonl. For a worker lost mid-run, whose last lines never reached the master.",
        "flowsim ledger merge 20261130103722-642e worker-b/ledger-hostb-4242.jsonl\n"
        "flowsim ledger summary 20261130103722-642e",
        "0  merged (or nothing new)\n" + _USAGE),
}
