"""The README's examples are what the code accepts: every TOML block of "The simulator's org file" loads as part
of an org (so the documented fault syntax, knees and bots cannot drift from the parser), and every subcommand's
--help has a description, examples and exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sim.platform.org_file import parse_org

ROOT = Path(__file__).resolve().parent.parent


def _org_file_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The simulator's org file", 1)[1].split("\n## ", 1)[0].split("**Assumptions**", 1)[0]
    return re.findall(r"```toml\n(.*?)```", section, flags=re.S)


def test_the_readme_documents_flows_faults_knees_bots_and_settings_with_examples() -> None:
    text = "\n".join(_org_file_blocks())
    for key in ("duration_ms", "failure_rate", "error_rates", "drop_rate", "early_expiry_rate", "knee_per_s",
                "overload_error_rate", "[flows.bot]", "rate_limit_per_window", "[network]"):
        assert key in text, key


@pytest.mark.parametrize("block", range(5))
def test_each_org_file_example_in_the_readme_loads(block: int) -> None:
    """Each example joined to the built-in org's clients and divisions: the simulator's own parser accepts it, and
    `serve --describe` shows what it configured (faults, knees, durations)."""
    from sim.platform.describe import describe

    assert len(_org_file_blocks()) == 5
    base = tomllib.loads((ROOT / "sim" / "platform" / "default_org.toml").read_text(encoding="utf-8"))
    example = tomllib.loads(_org_file_blocks()[int(block)])
    org_data = {k: v for k, v in base.items() if k != "flows"} | {k: v for k, v in example.items() if k != "flows"}
    org_data["flows"] = base["flows"] + example.get("flows", [])
    org = parse_org(org_data, f"README example {block}")
    assert len(org.flows) == len(base["flows"]) + len(example.get("flows", []))
    described = describe(org)
    mine = described["flows"][len(base["flows"]):]
    if block == 0:
        assert mine[0]["duration_ms"] == {"median": 5000, "p99": 6000} and mine[0]["outcomes"]["failure_rate"] == 0.02
    if block == 1:
        assert described["faults"]["latency_ms"] == {"median": 40, "p99": 250}
        assert mine[0]["faults"]["error_rates"] == {"503": 0.05, "504": 0.01}
    if block == 2:
        assert mine[0]["capacity"]["knee_per_s"] == 40


@pytest.mark.parametrize("command", [["serve"], ["run"], ["validate"], ["capacity"], ["compare"], ["report"],
                                     ["analytics"], ["ledger", "summary"]])
def test_every_subcommand_help_has_a_description_examples_and_exit_codes(command: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "sim.cli", *command, "--help"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert "examples:\n  flowsim " in out and "exit codes:\n  0  " in out and "\n  2  " in out
