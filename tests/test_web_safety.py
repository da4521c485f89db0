"""The web UI cannot leak the OAuth secret or start load from the network: it binds to loopback unless told,
refuses a non-loopback address without a login, takes only its own fields from a form, and a form's target or
scenario never reaches a URL or a file the command line did not name."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from sim.errors import ConfigError
from sim.load.target import Target, check_credential_destination, resolve_target
from sim.platform.org import default_org
from sim.platform.server import SimulatorThread
from sim.run import webform
from sim.run.runner import free_port
from tests.e2e import ENV, write_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_a_non_loopback_web_ui_needs_a_login_and_its_password() -> None:
    """0.0.0.0 without --web-login is refused; with it, FLOWSIM_WEB_PASSWORD must be set; loopback needs neither."""
    assert webform.check_exposure(web_host="127.0.0.1", web_ui=True, web_login=False, password_set=False) == []
    assert webform.check_exposure(web_host="0.0.0.0", web_ui=False, web_login=False, password_set=False) == []
    assert "without a login" in webform.check_exposure(web_host="*", web_ui=True, web_login=False,
                                                       password_set=False)[0]
    assert "FLOWSIM_WEB_PASSWORD" in webform.check_exposure(web_host="0.0.0.0", web_ui=True, web_login=True,
                                                            password_set=False)[0]
    assert webform.check_exposure(web_host="0.0.0.0", web_ui=True, web_login=True, password_set=True) == []


def test_a_form_changes_only_its_own_fields() -> None:
    """Approval, window, ledger dir, summary path and Locust's file outputs go back to the command line's values."""
    startup = {"flowsim_scenario": "s.toml", "flowsim_rate": "", "flowsim_approval": "", "flowsim_outside_window": False,
               "flowsim_ledger_dir": "runs", "flowsim_summary_json": "", "html_file": None}
    opts = SimpleNamespace(**{**startup, "flowsim_rate": "20", "flowsim_approval": "FORGED",
                              "flowsim_outside_window": True, "flowsim_ledger_dir": "/etc",
                              "flowsim_summary_json": "/tmp/x", "html_file": "/etc/passwd"})
    webform.pin(opts, startup)
    assert vars(opts) == {**startup, "flowsim_rate": "20"}


def test_a_form_names_only_scenarios_beside_the_start_up_one_and_known_targets(tmp_path: Path) -> None:
    """A scenario outside the start-up scenario's folder, a device or a non-.toml file is refused; a target must
    be embedded, a region or the start-up target — never a URL typed into the form."""
    home = tmp_path / "scenarios"
    home.mkdir()
    (home / "a.toml").write_text("")
    (home / "b.toml").write_text("")
    startup = {"flowsim_scenario": str(home / "a.toml"), "flowsim_target": "http://127.0.0.1:9"}

    def form(scenario: str, target: str = "") -> None:
        webform.check_form(SimpleNamespace(flowsim_scenario=scenario, flowsim_target=target), startup)

    form(str(home / "b.toml"))
    form(str(home / "a.toml"), "embedded")
    form(str(home / "a.toml"), "eu_west_1")
    form(str(home / "a.toml"), "http://127.0.0.1:9")
    for bad in ("/dev/zero", str(tmp_path / "outside.toml"), str(home / ".." / "x.toml"), "/etc/passwd"):
        with pytest.raises(ConfigError, match="flowsim_scenario"):
            form(bad)
    for bad in ("http://attacker.example", "https://api.mypurecloud.com.attacker.example", "http://127.0.0.1:1"):
        with pytest.raises(ConfigError, match="never receives credentials"):
            form(str(home / "a.toml"), bad)


def test_real_credentials_go_only_to_a_region_login_host_or_a_simulator() -> None:
    """HTTPS to login.<region domain>: yes; a simulator over HTTPS: yes; loopback: yes; any other host, or a
    simulator in clear text over a network: refused."""
    check_credential_destination(resolve_target("eu_west_1"), simulator=False)
    check_credential_destination(resolve_target("https://api.mypurecloud.de"), simulator=False)
    for sim in (True, False):  # loopback: nothing leaves this machine
        check_credential_destination(Target(api_url="http://127.0.0.1:8080", login_url="http://127.0.0.1:8080"),
                                     simulator=sim)
    check_credential_destination(Target(api_url="https://sim.example", login_url="https://sim.example"),
                                 simulator=True)
    for target, sim in ((resolve_target("https://api.attacker.example"), False),
                        (resolve_target("http://api.mypurecloud.com"), False),
                        (Target(api_url="http://192.0.2.9:8080", login_url="http://192.0.2.9:8080"), True)):
        with pytest.raises(ConfigError, match="refusing to send"):
            check_credential_destination(target, simulator=sim)


class Trap:
    """A listener that records every connection made to it (nothing should ever come)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                found.add(addr)
    return found


@pytest.mark.slow
def test_the_web_ui_binds_loopback_and_a_forged_form_sends_nothing_anywhere(tmp_path: Path) -> None:
    """Plain `locust -f locustfile.py` listens on 127.0.0.1 only; --web-host 0.0.0.0 without a login exits 2 with
    one line; a POST /swarm naming an attacker's URL, /dev/zero or an approval starts no run and the attacker's
    listener never hears from it."""
    scenario = write_scenario(tmp_path, rate=5, duration="3s")
    port = free_port()
    trap = Trap()
    base = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--web-port", str(port),
            "--flowsim-scenario", str(scenario), "--flowsim-ledger-dir", str(tmp_path / "runs")]
    exposed = subprocess.run([*base, "--web-host", "0.0.0.0"], env=ENV, cwd=tmp_path, capture_output=True,
                             text=True, timeout=60)
    assert exposed.returncode == 2 and "without a login" in exposed.stderr, exposed.stderr[-2000:]
    with SimulatorThread(default_org()) as sim:
        ui = subprocess.Popen([*base, "--flowsim-target", sim.url], env=ENV, cwd=tmp_path,
                              stdout=(tmp_path / "ui.log").open("w"), stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.25)
            assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
            forged = [({"flowsim_target": trap.url}, "flowsim_target"),
                      ({"flowsim_scenario": "/dev/zero"}, "flowsim_scenario"),
                      ({"flowsim_target": "https://api.mypurecloud.com.attacker.example", "flowsim_approval": "X",
                        "flowsim_outside_window": "true"}, "flowsim_target")]
            for fields, refused in forged:
                form = {"user_count": "1", "spawn_rate": "1", "flowsim_scenario": str(scenario),
                        "flowsim_target": sim.url, **fields}
                answer = httpx.post(f"{url}/swarm", data=form, timeout=10)
                assert answer.status_code == 200  # refused in the answer the form shows, before Locust starts
                assert answer.json()["success"] is False and refused in answer.json()["message"], answer.text
                error = ""
                for _ in range(80):  # and the reason in the tab
                    tab = httpx.get(f"{url}/stats/requests", timeout=5).json()
                    rows = {r["figure"]: r["value"] for t in tab.get("extendedStats", []) for r in t["data"]}
                    error = rows.get("error", "")
                    if error.startswith(refused) and tab["state"] != "running":
                        break
                    time.sleep(0.25)
                assert error.startswith(refused), (fields, error)
            assert trap.hits == 0
            assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
            # A good START whose form also names where to write: the run happens, its files go where the
            # command line said, never where the form said.
            evil = tmp_path / "elsewhere"
            form = {"user_count": "1", "spawn_rate": "1", "flowsim_scenario": str(scenario), "flowsim_target": sim.url,
                    "flowsim_rate": "5", "flowsim_duration": "2s", "flowsim_summary_json": str(evil / "s.json"),
                    "flowsim_ledger_dir": str(evil / "runs"), "html_file": str(evil / "locust.html")}
            assert httpx.post(f"{url}/swarm", data=form, timeout=10).status_code == 200
            for _ in range(120):
                if (tmp_path / "runs").exists() and any((tmp_path / "runs").iterdir()):
                    break
                time.sleep(0.25)
            assert any((tmp_path / "runs").iterdir()) and not evil.exists()
        finally:
            ui.terminate()
            ui.wait(timeout=30)
    assert "Traceback" not in (tmp_path / "ui.log").read_text()
    assert not (tmp_path / "elsewhere").exists()  # not even Locust's own report at exit


def test_the_next_web_start_keeps_the_embedded_simulator_and_a_refused_one_leaves_it_running(tmp_path: Path) -> None:
    """A second START with other form values gets a new plan on the *same* embedded simulator (so the target the
    web UI shows stays true); a START whose preflight fails is refused and stops nothing of the last run's."""
    from argparse import Namespace
    from types import SimpleNamespace

    from sim.run.starts import check_start, current
    from tests.e2e import TEST_FLOW

    scenario = write_scenario(tmp_path, rate=5, duration="2s")
    (tmp_path / "bogus.toml").write_text(scenario.read_text().replace(TEST_FLOW, "00000000-0000-4000-8000-00000000dead"))
    opts = Namespace(flowsim_scenario=str(scenario), flowsim_target="embedded", flowsim_rate="", flowsim_duration="",
                     flowsim_ledger_dir=str(tmp_path / "runs"), flowsim_abort_error_rate=0.0, flowsim_approval="",
                     flowsim_outside_window=False, flowsim_plan="")
    env = SimpleNamespace(parsed_options=opts, flowsim_startup=dict(vars(opts)), flowsim=None)
    assert check_start(env, {}, role="local", processes=1) is None
    first = current(env)
    assert first is not None and first.prepared is not None and first.prepared.sim is not None
    sim = first.prepared.sim
    try:
        assert check_start(env, {"flowsim_rate": "7", "flowsim_duration": "2s"}, role="local", processes=1) is None
        second = current(env)
        assert second is not first and second.prepared is not None and second.prepared.sim is sim
        assert second.plan is not None and second.plan.target.api_url == sim.url and sim.proc.poll() is None
        problem = check_start(env, {"flowsim_scenario": str(tmp_path / "bogus.toml")}, role="local", processes=1)
        assert problem is not None and "preflight failed" in problem
        assert current(env) is second and second.prepared.sim is sim and sim.proc.poll() is None
    finally:
        sim.stop()
