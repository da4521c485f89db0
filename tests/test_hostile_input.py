"""Whatever a user types or points flowsim at, the answer is one line and exit 2 — never a traceback.
Hypothesis fuzzes the scenario and org loaders; real commands are run against hostile files and targets."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import ConfigError
from sim.load.scenario import load_scenario
from sim.platform.org import load_org

ROOT = Path(__file__).resolve().parent.parent
SMOKE = (ROOT / "scenarios" / "smoke.toml").read_text()
BOT = (ROOT / "scenarios" / "bot-conversation.toml").read_text()
ORG = (ROOT / "sim" / "platform" / "default_org.toml").read_text()

_toml_scalars = st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=20),
                          st.sampled_from(["nan", "inf", "-inf", "1e999", '""', "[]", "{}", "0", "-1"]))


def _mutate(base: str, data: st.DataObject) -> str:
    """The shipped file with one line replaced by `key = <something odd>`, or cut, or garbled."""
    lines = base.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    kind = data.draw(st.sampled_from(["value", "cut", "junk"]))
    if kind == "value" and "=" in lines[i]:
        key = lines[i].split("=", 1)[0]
        v = data.draw(_toml_scalars)
        lines[i] = f"{key}= {v if isinstance(v, str) else repr(v).lower()}"
    elif kind == "cut":
        lines = lines[:i]
    else:
        lines[i] = data.draw(st.text(max_size=40))
    return "\n".join(lines)


@pytest.mark.parametrize("base", [SMOKE, BOT], ids=["smoke", "bot-conversation"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_scenarios_load_or_fail_with_config_error(tmp_path: Path, base: str, data: st.DataObject) -> None:
    """A mutated shipped scenario (smoke.toml; bot-conversation.toml with its scripts, expectations, channels)
    either loads or raises ConfigError naming the file — nothing else escapes."""
    p = tmp_path / "fuzz.toml"
    p.write_text(_mutate(base, data), encoding="utf-8")
    for asset in ("utterances", "data"):  # the files the shipped scenario names, so the fuzz reaches past them
        if not (tmp_path / asset).exists():
            shutil.copytree(ROOT / "scenarios" / asset, tmp_path / asset)
    try:
        load_scenario(p)
    except ConfigError as exc:
        assert str(p) in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_orgs_load_or_fail_with_config_error(tmp_path: Path, data: st.DataObject) -> None:
    """A mutated default org either loads or raises ConfigError naming the file."""
    p = tmp_path / "org.toml"
    p.write_text(_mutate(ORG, data), encoding="utf-8")
    try:
        load_org(p)
    except ConfigError as exc:
        assert str(p) in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_are_one_config_error(tmp_path: Path, raw: bytes) -> None:
    """Any bytes at all, as a scenario or an org: loaded or one ConfigError."""
    p = tmp_path / "bytes.toml"
    p.write_bytes(raw)
    for load in (load_scenario, load_org):
        try:
            load(p)
        except ConfigError:
            pass


def _flowsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`flowsim ARGS` run in this process through its entry point (sim.cli.main), its output captured: what a
    user sees, without a new interpreter per case. An exception that escapes main is a traceback: it fails."""
    import contextlib
    import io
    import os

    from sim.cli import main

    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's own errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("case", ["binary", "latin1", "directory", "huge", "locale", "nan_rate", "rate_1e9"])
def test_hostile_files_and_flags_give_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    """Binary, Latin-1, a directory, a 2 MB file, an unknown locale, --rate nan, --rate 1e9: one line, exit 2."""
    p = tmp_path / "s.toml"
    args = ["run", str(p)]
    if case == "binary":
        p.write_bytes(b"\x00\x01\x02" * 100)
    elif case == "latin1":
        p.write_bytes(SMOKE.replace('name = "smoke"', 'name = "caf\xe9"').encode("latin-1"))
    elif case == "directory":
        args = ["run", str(tmp_path)]
    elif case == "huge":
        p.write_text(SMOKE + "\n# " + "x" * 2_000_000 + "\n")
    elif case == "locale":
        p.write_text(SMOKE.replace("seed = 42", 'locale = "xx_XX"'))
    else:
        p.write_text(SMOKE)
        args += ["--rate", "nan" if case == "nan_rate" else "1e9"]
    r = _flowsim(*args, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("usage:", " "))]  # argparse's usage block
    assert len(lines) == 1 and lines[0].startswith("flowsim:") and len(lines[0]) < 400, r.stderr


@pytest.mark.parametrize("case", ["org_binary", "org_dir", "port"])
def test_serve_refuses_bad_org_files_and_ports_in_one_line(tmp_path: Path, case: str) -> None:
    """`flowsim serve --org` with a binary file or a directory, `--port 99999`: one line, exit 2."""
    bad = tmp_path / "org.toml"
    bad.write_bytes(b"\x00\xff" * 50)
    args = {"org_binary": ["--org", str(bad)], "org_dir": ["--org", str(tmp_path)], "port": ["--port", "99999"]}[case]
    r = _flowsim("serve", *args, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


class _HtmlEverywhere(http.server.BaseHTTPRequestHandler):
    """A captive portal / wrong host: 200 text/html to every request."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body>Welcome to the network</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def html_target() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlEverywhere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_target_answering_html_is_one_clear_line(tmp_path: Path, html_target: str, command: str) -> None:
    """A target that answers 200 text/html to everything: one line saying the target is not an API, exit 2."""
    p = tmp_path / "s.toml"
    p.write_text(SMOKE)
    env_args = ["--target", html_target] + (["--approval", "CASE-1", "--outside-window"] if command == "run" else [])
    r = subprocess.run([sys.executable, "-m", "sim.cli", command, str(p), *env_args], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "GENESYS_CLIENT_ID": "x",
                                                      "GENESYS_CLIENT_SECRET": "y"})
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert "without an access_token" in r.stderr and "text/html" in r.stderr


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_dead_url_says_nothing_listens_before_any_talk_of_credentials(tmp_path: Path, command: str) -> None:
    """A URL where nothing listens, no credentials and no approval in the environment: the first (and only) thing
    said is that nothing listens there — not that credentials or an approval are missing."""
    from sim.run.runner import free_port

    p = tmp_path / "s.toml"
    p.write_text(SMOKE)
    url = f"http://127.0.0.1:{free_port()}"
    r = subprocess.run([sys.executable, "-m", "sim.cli", command, str(p), "--target", url], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    _one_line(r)
    assert f"nothing listens at {url}" in r.stderr
    assert "credential" not in r.stderr.lower() and "approval" not in r.stderr.lower()


def _one_line(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("usage:", " "))]
    assert len(lines) == 1 and lines[0].startswith("flowsim:") and len(lines[0]) < 600, r.stderr


@pytest.mark.parametrize("case", [
    "concurrency_10M", "workers_64", "dev_zero", "fifo", "run_id_path", "run_id_long", "run_id_reused",
    "lone_brace", "conversion", "format_spec", "ledger_dir_file", "junit_dir", "csv_proc", "report_out_dir",
    "compare_string", "compare_schema_999", "capacity_negative_slo", "capacity_error_rate_2"])
def test_accepted_input_is_bounded_before_any_load(tmp_path: Path, case: str) -> None:
    """Every input that used to run away, escape its folder or end in a traceback is one line and exit 2, before
    anything is sent: huge concurrency, too many workers, special files, run ids that are paths, too long or
    reused, bad placeholders, unwritable outputs, summaries with a string count or from a newer flowsim, capacity
    options out of range."""
    import json
    import os

    p = tmp_path / "s.toml"
    p.write_text(SMOKE)
    run = ["run", str(p), "--ledger-dir", str(tmp_path / "runs")]
    from tests.test_capacity_compare_report import fake_summary

    summary = tmp_path / "sum.json"
    good = fake_summary(10, p95=5).to_dict()
    summary.write_text(json.dumps(good))
    if case in ("report_out_dir", "compare_string", "compare_schema_999"):  # the unchanged summary reads fine
        assert _flowsim("compare", str(summary), str(summary), cwd=tmp_path).returncode == 0
    args: list[str] = {
        "concurrency_10M": run,
        "workers_64": [*run, "--workers", "64"],
        "dev_zero": ["run", "/dev/zero"],
        "fifo": ["run", str(tmp_path / "fifo.toml")],
        "run_id_path": [*run, "--run-id", "../../x"],
        "run_id_long": [*run, "--run-id", "x" * 300],
        "run_id_reused": [*run, "--run-id", "again"],
        "lone_brace": run, "conversion": run, "format_spec": run,
        "ledger_dir_file": ["run", str(p), "--ledger-dir", str(p)],
        "junit_dir": [*run, "--junit", str(tmp_path)],
        "csv_proc": [*run, "--csv-series", "/proc/version"],
        "report_out_dir": ["report", str(summary), "--out", str(tmp_path)],
        "compare_string": ["compare", str(summary), str(summary)],
        "compare_schema_999": ["compare", str(summary), str(summary)],
        "capacity_negative_slo": ["capacity", str(p), "--slo-p95-ms", "-5"],
        "capacity_error_rate_2": ["capacity", str(p), "--max-error-rate", "2"],
    }[case]
    if case == "concurrency_10M":
        p.write_text(SMOKE.replace('max_concurrency = "auto"', "max_concurrency = 10000000"))
    elif case == "fifo":
        os.mkfifo(tmp_path / "fifo.toml")
    elif case == "run_id_reused":
        (tmp_path / "runs" / "again").mkdir(parents=True)
        (tmp_path / "runs" / "again" / "ledger-x-1.jsonl").write_text("{}\n")
    elif case in ("lone_brace", "conversion", "format_spec"):
        bad = {"lone_brace": '"a } b"', "conversion": '"{identity.full_name!r}"', "format_spec": '"{identity.seq:>9}"'}
        p.write_text(SMOKE.replace('"Flow.priority" = 3', f'"Flow.priority" = {bad[case]}'))
    elif case == "compare_string":
        summary.write_text(json.dumps({**good, "launched": "many"}))
    elif case == "compare_schema_999":
        summary.write_text(json.dumps({**good, "schema_version": 999}))
    r = _flowsim(*args, cwd=tmp_path)
    _one_line(r)
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_a_ledger_folder_without_room_for_the_run_is_refused_up_front(tmp_path: Path) -> None:
    """Less free space than the run's ledger needs: one ConfigError naming the folder and both figures."""
    from sim._files import check_writable_dir

    check_writable_dir(tmp_path / "runs", what="--ledger-dir", need_bytes=1)
    with pytest.raises(ConfigError, match=r"MB free: --ledger-dir needs about 1,000,000,000,000.0 MB"):
        check_writable_dir(tmp_path / "runs", what="--ledger-dir", need_bytes=10**18)
