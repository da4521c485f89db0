"""Locust's web UI as a user drives it, in headless Chromium (Playwright on the system's Chromium):
START with the form's defaults, a run that ends with its schedule and shows STOPPED and PASS on the open page
(never reloaded), a bad value refused in the form with its reason, a second run with a rate typed into the form,
STOP — after which nothing more is sent or counted, and the open page shows STOPPED and INTERRUPTED."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sim.load.ledger import ledger_files, read_records
from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.run.runner import free_port
from tests.e2e import ENV, sim_records, write_scenario

ROOT = Path(__file__).resolve().parent.parent


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    """Poll (bounded) until ``predicate()`` is truthy."""
    for _ in range(int(timeout_s / 0.25)):
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"gave up waiting for {what}")


def _summary(path: Path, not_run: str | None = None) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("run_id") != not_run else None


def _launches(runs: Path, run_id: str) -> list[dict[str, Any]]:
    return [r for r in read_records(ledger_files(runs / run_id)) if r["event"] == "launch"]


def settled(url: str, workers: int) -> bool:
    """Stopped, with every worker back (Locust drops a worker from its list at its stop, until it is ready again)."""
    d = httpx.get(f"{url}/stats/requests", timeout=5).json()
    return bool(d["state"] == "stopped" and d.get("worker_count", 0) == workers)


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("FLOWSIM_SCREENSHOTS"):  # to look at them: FLOWSIM_SCREENSHOTS=dir make test
        Path(os.environ["FLOWSIM_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["FLOWSIM_SCREENSHOTS"]) / path.name)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_web_ui_start_with_defaults_then_stop_a_second_run(tmp_path: Path, workers: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs it")
        pytest.skip("chromium not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    scenario = write_scenario(tmp_path, rate=10, duration="5s", follow=True,
                              thresholds="launch_error_rate = 0.01\nmissed_start_rate = 0.0")
    text = scenario.read_text()
    scenario.write_text(re.sub(r"max_concurrency = \d+\n", "", text))  # the form's defaults: concurrency "auto"
    port, master_port = free_port(), free_port()
    distributed = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port)] if workers else []
    runs, summary = tmp_path / "runs", tmp_path / "summary.json"
    with SimulatorThread(default_org()) as sim:
        ui = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--web-host", "127.0.0.1",
             "--web-port", str(port), "--flowsim-scenario", str(scenario), "--flowsim-target", sim.url,
             "--flowsim-ledger-dir", str(runs), "--flowsim-summary-json", str(summary), *distributed],
            env=ENV, cwd=tmp_path, stdout=(tmp_path / "master.log").open("w"), stderr=subprocess.STDOUT, text=True)
        fleet = [subprocess.Popen([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--worker",
                                   "--master-host", "127.0.0.1", "--master-port", str(master_port)],
                                  env=ENV, cwd=tmp_path, stdout=(tmp_path / f"worker-{i}.log").open("w"),
                                  stderr=subprocess.STDOUT)
                 for i in range(workers)]
        url = f"http://127.0.0.1:{port}"
        try:
            def up() -> bool:
                try:
                    return httpx.get(url, timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait(up, 60, "the web UI")
            _wait(lambda: httpx.get(f"{url}/stats/requests", timeout=5).json().get("worker_count", 0) == workers,
                  60, f"{workers} workers")
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu"])
                page = b.new_page(viewport={"width": 1200, "height": 1000})
                page.goto(url)
                page.get_by_role("button", name="Start").wait_for(timeout=30_000)
                _shot(page, tmp_path, "1-form")

                # Run 1: START with the form as it comes. The load shape sets the users; the run ends itself.
                page.get_by_role("button", name="Start").click()
                first = _wait(lambda: _summary(summary), 90, "run 1's summary")
                assert first["passed"] is True and first["missed_starts"] == 0 and first["interrupted"] is False
                assert first["launched"] == first["scheduled"] == 50 and first["duplicate_launches"] == 0
                assert abs(first["achieved_rate_per_s"] - 10) <= 0.5
                # The open page, never reloaded, reaches STOPPED and the verdict (Locust's page polls only while it
                # believes a test runs: a run's end seen as cleanup/stopping used to freeze it there).
                page.get_by_role("tab", name="flowsim").click()
                _wait(lambda: "STOPPED" in page.inner_text("body") and "PASS" in page.inner_text("body"), 60,
                      "STOPPED and the verdict on the open page")
                _wait(lambda: settled(url, workers), 60, "the master to settle")
                _shot(page, tmp_path, "2-flowsim-tab-pass")

                # Run 2: a rate typed into the form's flowsim fields, then STOP mid-run.
                page.get_by_role("button", name="New").click()
                page.get_by_text("Custom parameters").click()
                # A value that makes no run is refused in the form, with its reason; nothing starts.
                page.get_by_label(re.compile("Flowsim Rate")).fill("fast")
                page.get_by_label(re.compile("Flowsim Duration")).fill("60s")
                page.get_by_role("button", name="Start").last.click()
                page.get_by_text(re.compile("flowsim: .*fast")).wait_for(timeout=30_000)
                _shot(page, tmp_path, "3-form-refused")
                assert [d.name for d in runs.iterdir()] == [first["run_id"]]
                assert httpx.get(f"{url}/stats/requests", timeout=5).json()["state"] == "stopped"
                page.get_by_label(re.compile("Flowsim Rate")).fill("20")
                _shot(page, tmp_path, "3-form-run-2")
                page.get_by_role("button", name="Start").last.click()
                second_id = _wait(lambda: [d.name for d in runs.iterdir() if d.name != first["run_id"]], 60,
                                  "run 2's ledger")[0]
                _wait(lambda: len(_launches(runs, second_id)) >= 60, 60, "run 2's first 60 launches")
                _shot(page, tmp_path, "4-running")
                page.get_by_role("button", name="Stop").click()
                second = _wait(lambda: _summary(summary, not_run=first["run_id"]), 60, "run 2's summary")
                stopped = len(sim_records(sim.url, second_id))
                time.sleep(3)  # nothing may arrive after STOP (an invariant checked over a pause, not a timing bound)
                assert len(sim_records(sim.url, second_id)) == stopped
                recs = list(read_records(ledger_files(runs / second_id)))
                assert second["run_id"] == second_id and second["target_rate_per_s"] == 20.0
                assert second["workers"] == max(1, workers)
                assert second["interrupted"] is True and second["passed"] is False
                assert second["missed_starts"] == 0 and not [r for r in recs if r["event"] in ("missed", "late")]
                assert second["launched"] == len([r for r in recs if r["event"] == "launch"]) == stopped
                assert 60 <= second["launched"] < second["scheduled"] == 1200
                page.get_by_role("tab", name="flowsim").click()  # the open page, not reloaded
                _wait(lambda: "STOPPED" in page.inner_text("body") and "INTERRUPTED" in page.inner_text("body"), 60,
                      "STOPPED and INTERRUPTED on the open page")
                _wait(lambda: settled(url, workers), 60, "the master to settle")
                _shot(page, tmp_path, "5-flowsim-tab-stopped")
                b.close()
            metrics = httpx.get(f"{url}/flowsim/metrics", timeout=5).text
            assert f'run_id="{second_id}"' in metrics
        finally:
            for w in fleet:
                w.send_signal(signal.SIGTERM)
            ui.send_signal(signal.SIGTERM)
            try:
                ui.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ui.kill()
                ui.wait()
        for w in fleet:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
    out = (tmp_path / "master.log").read_text()
    assert "Traceback" not in out, out[-3000:]
