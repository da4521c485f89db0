"""Many hosts, one truth (issue #21). The simulator, the master and each worker run in their own network namespace
(a veth pair each on a bridge, their own addresses, HTTPS with a private CA: credentials never cross a network in
clear) and each worker in its own mount namespace, where the master's ledger folder is its own disk — as on
separate machines, no folder is shared. One worker's wall clock is 2 s ahead (tests/skew/sitecustomize.py, as
libfaketime would: its monotonic clock and the kernel's are left alone). The commands are the README's plain
Locust ones (and the deployment recipe's, deploy/). Needs root and iproute2: CI runs as root.

Proved: the run's one ledger (at the master) = the summary = what the simulator received, exactly, with a worker
paused mid-run and the skewed one never sending early; each worker's copy stays on its own host; the master binds
only where it is told; kill -9 of a worker: the loss is within the bound the summary states, and its local copy,
merged, leaves only its requests in flight.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sim.load.ledger import ledger_files, read_records
from tests.e2e import CAN_MAKE_HOSTS, ENV, write_scenario

ROOT = Path(__file__).resolve().parent.parent
NAMESPACES = pytest.mark.skipif(not CAN_MAKE_HOSTS,
                                reason="network and mount namespaces need root and iproute2 (CI runs as root)")
ADDR = {"sim": "10.77.0.2", "master": "10.77.0.3", "w1": "10.77.0.4", "w2": "10.77.0.5"}
SIM_PORT, MASTER_PORT = 8443, 5557
_FLEETS = itertools.count()


def recipe() -> dict[str, Any]:
    """The deployment recipe as a cluster would read it: the image's entry command (deploy/Dockerfile) and the
    manifests' (deploy/k8s/flowsim.yaml): the master Job's and the worker Deployment's arguments, the Service."""
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    assert entry is not None
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "flowsim.yaml").read_text()) if d}
    pod = {k: docs[k]["spec"]["template"]["spec"]["containers"][0] for k in ("Job", "Deployment")}
    return {"entry": json.loads(entry.group(1)), "master": pod["Job"]["args"], "worker": pod["Deployment"]["args"],
            "docs": docs}


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


pytestmark = pytest.mark.slow


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Four namespaces on a bridge of their own (the test itself reaches them from 10.77.0.1); torn down after."""
    n = f"{os.getpid() % 1000}{next(_FLEETS)}"  # unique per process and per test (a deleted veth lingers)
    bridge, names = f"fsb{n}", {h: f"fs{n}-{h}" for h in ADDR}
    _sh("ip", "link", "add", bridge, "type", "bridge")
    try:
        _sh("ip", "addr", "add", "10.77.0.1/24", "dev", bridge)
        _sh("ip", "link", "set", bridge, "up")
        for i, (h, ns) in enumerate(names.items()):
            outer, inner = f"fv{n}{i}", f"fe{n}{i}"
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            _sh("ip", "link", "set", inner, "netns", ns)
            _sh("ip", "link", "set", outer, "master", bridge, "up")
            _sh("ip", "-n", ns, "addr", "add", f"{ADDR[h]}/24", "dev", inner)
            _sh("ip", "-n", ns, "link", "set", inner, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A private CA and the simulator's certificate for its address (openssl, as an admin would)."""
    d = tmp_path / "pki"
    d.mkdir()

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=flowsim hosts CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", f"/CN={ADDR['sim']}")
    (d / "ext").write_text(f"subjectAltName=IP:{ADDR['sim']}\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem",
         "-days", "2", "-extfile", "ext")
    return {"ca": d / "ca.pem", "cert": d / "srv.pem", "key": d / "srv.key"}


class Fleet:
    """The simulator, a plain-Locust master and two workers, each on its own host."""

    def __init__(self, tmp_path: Path, hosts: dict[str, str], pki: dict[str, Path]) -> None:
        self.tmp, self.hosts, self.ca = tmp_path, hosts, pki["ca"]
        self.runs = tmp_path / "runs"  # the master's ledger folder; on a worker's host, that worker's own disk
        self.runs.mkdir()
        self.env = {**ENV, "SSL_CERT_FILE": str(self.ca), "PYTHONPATH": str(ROOT)}
        self.url = f"https://{ADDR['sim']}:{SIM_PORT}"
        self.tls = ssl.create_default_context(cafile=str(self.ca))
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.procs["sim"] = self._start("sim", [sys.executable, "-m", "sim.cli", "serve", "--host", ADDR["sim"],
                                                "--port", str(SIM_PORT), "--tls-cert", str(pki["cert"]),
                                                "--tls-key", str(pki["key"]), "--log-level", "warning"])
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_sim/stats", verify=self.tls, timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline and self.procs["sim"].poll() is None, "the simulator did not start"
            time.sleep(0.2)

    def _start(self, host: str, cmd: list[str], env: dict[str, str] | None = None,
               disk: Path | None = None) -> subprocess.Popen[str]:
        """``cmd`` on ``host``; ``disk``: its own folder mounted where the master keeps the run's ledger."""
        wrap = ["ip", "netns", "exec", self.hosts[host]]
        if disk is not None:
            disk.mkdir(exist_ok=True)
            wrap += ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(disk), str(self.runs)]
        log = open(self.tmp / f"{host}.log", "w")  # noqa: SIM115 - closed with the fleet
        return subprocess.Popen([*wrap, *cmd], env=env or self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
                                text=True)

    def start_run(self, scenario: Path, *, skew_w2: float = 0.0) -> None:
        """The deployment recipe's commands (the README's too), with this test's paths and addresses in place of
        the cluster's: the master binds its own address; each worker names only the master's."""
        r = recipe()
        here = {"python": sys.executable, "/app/locustfile.py": str(ROOT / "locustfile.py"), "$(POD_IP)": ADDR["master"],
                "$(GENESYS_REGION)": self.url, "/scenario/scenario.toml": str(scenario), "/runs": str(self.runs),
                "/runs/summary.json": str(self.tmp / "summary.json"), "flowsim-master": ADDR["master"]}
        entry = [here.get(a, a) for a in r["entry"]]
        self.procs["master"] = self._start("master", entry + [here.get(a, a) for a in r["master"]])
        for w in ("w1", "w2"):
            env = {**self.env, "PYTHONPATH": f"{ROOT / 'tests' / 'skew'}:{ROOT}",
                   "FLOWSIM_TEST_WALL_SKEW_S": str(skew_w2)} if w == "w2" and skew_w2 else None
            self.procs[w] = self._start(w, entry + [here.get(a, a) for a in r["worker"]], env=env,
                                        disk=self.tmp / f"{w}-disk")

    def launches(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """The launches in the master's ledger (the run's one ledger; nothing from the workers' hosts)."""
        dirs = [self.runs / run_id] if run_id else [d for d in self.runs.iterdir() if d.is_dir()]
        return [r for d in dirs for r in read_records(ledger_files(d)) if r["event"] == "launch"]

    def wait_launches(self, n: int, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.launches()) < n:
            assert time.monotonic() < deadline, f"fewer than {n} launches: {self.logs()}"
            assert self.procs["master"].poll() is None, self.logs()
            time.sleep(0.2)

    def wait_master(self, timeout_s: float = 180) -> dict[str, Any]:
        self.procs["master"].wait(timeout=timeout_s)
        return dict(json.loads((self.tmp / "summary.json").read_text()))

    def received(self, run_id: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/_sim/executions", params={"name_prefix": f"flowsim-{run_id}-", "limit": 100000},
                      verify=self.tls, timeout=30)
        return list(r.json()["entities"])

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(self.tmp.glob("*.log")))

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@pytest.fixture
def fleet(tmp_path: Path, hosts: dict[str, str], pki: dict[str, Path]) -> Iterator[Fleet]:
    f = Fleet(tmp_path, hosts, pki)
    try:
        yield f
    finally:
        f.close()


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_the_deployment_recipe_parses_and_agrees_with_itself() -> None:
    """What the namespace tests run is what a cluster would: the manifests parse, workers reach the Service's port,
    the master binds only its pod's address and expects as many workers as the Deployment runs."""
    r = recipe()
    docs, master, worker = r["docs"], r["master"], r["worker"]
    assert set(docs) == {"ConfigMap", "Service", "PersistentVolumeClaim", "Job", "Deployment"}
    (port,) = docs["Service"]["spec"]["ports"]
    assert master[master.index("--master-bind-host") + 1] == "$(POD_IP)"
    assert master[master.index("--master-bind-port") + 1] == str(port["port"]) == worker[worker.index("--master-port") + 1]
    assert worker[worker.index("--master-host") + 1] == docs["Service"]["metadata"]["name"]
    assert master[master.index("--expect-workers") + 1] == str(docs["Deployment"]["spec"]["replicas"])
    assert r["entry"] == ["python", "-m", "locust", "-f", "/app/locustfile.py"]
    scenario = docs["ConfigMap"]["data"]["scenario.toml"]
    assert "[scenario]" in scenario and "[[stages]]" in scenario


@NAMESPACES
def test_across_hosts_a_paused_worker_and_a_clock_2s_ahead_change_nothing(fleet: Fleet, hosts: dict[str, str]) -> None:
    scenario = write_scenario(fleet.tmp, rate=20, duration="14s")
    fleet.start_run(scenario, skew_w2=2.0)
    fleet.wait_launches(60)
    listening = subprocess.run(["ip", "netns", "exec", hosts["master"], "ss", "-ltnH"], capture_output=True,
                               text=True, timeout=30).stdout
    fleet.procs["w1"].send_signal(signal.SIGSTOP)
    time.sleep(3)  # not a timing assert: a pause long enough to lose the lease (2.5 s of silence)
    resumed_at = time.time()
    fleet.procs["w1"].send_signal(signal.SIGCONT)
    s = fleet.wait_master()
    run_id = s["run_id"]
    ledger, received = fleet.launches(run_id), fleet.received(run_id)
    out = fleet.logs()
    # The master's 5557 is on the address it was told, nowhere else.
    binds = [line.split()[3] for line in listening.splitlines() if line.split()[3].endswith(f":{MASTER_PORT}")]
    assert binds == [f"{ADDR['master']}:{MASTER_PORT}"], listening
    # One truth: the master's ledger = the summary = the simulator, every line of both workers arrived.
    names = [r["name"] for r in ledger]
    assert len(names) == len(set(names)) == s["launched"] == len(received) > 60, out[-4000:]
    assert {r["name"] for r in received} == set(names) and s["duplicate_launches"] == 0
    assert s["possibly_sent"] == 0 and s["ledger"]["incomplete_workers"] == []
    assert all(st["complete"] for st in s["ledger"]["streams"].values()) and len(s["ledger"]["streams"]) == 2
    late = [r for r in read_records(ledger_files(fleet.runs / run_id)) if r["event"] == "late"]
    assert s["late"] == sum(int(r.get("count") or 1) for r in late) and not {r["seq"] for r in late} & {
        r["seq"] for r in ledger}  # what its pause made overdue was written as late, never sent
    assert s["launched"] + s["missed_starts"] + s["not_sent"] == s["scheduled"] == 280
    # Each worker's own copy stayed on its host: none in the master's folder.
    assert not (fleet.runs / run_id / "local").exists()
    for w in ("w1", "w2"):
        assert len(list((fleet.tmp / f"{w}-disk" / run_id / "local").glob("ledger-*.jsonl"))) == 1
    # The skewed worker kept to the master's clock: its offset is reported, and no launch reached the simulator
    # before it was due (the simulator's clock is the kernel's, as the master's). 10 ms: the simulator's ms stamps.
    offsets = sorted(s["ledger"]["clock_offsets_s"].values())
    assert len(offsets) == 2 and abs(offsets[0] + 2.0) < 0.5 and abs(offsets[1]) < 0.5, offsets
    skewed = min(s["ledger"]["clock_offsets_s"], key=lambda w: s["ledger"]["clock_offsets_s"][w])
    sent_by_skewed = sum(1 for r in ledger if r["worker"] == skewed)
    late_by_skewed = sum(int(r.get("count") or 1) for r in late if r["worker"] == skewed)
    # It sent its share, not wrote it off: a client checking the 1 s rule on its own wall clock saw every launch
    # 2 s overdue (seen: 0 sent, 149 late). The paused worker is the one with late launches.
    assert sent_by_skewed > late_by_skewed, (sent_by_skewed, late_by_skewed)
    (paused,) = set(s["ledger"]["clock_offsets_s"]) - {skewed}
    assert any(r["worker"] == paused and r["intended_at"] > resumed_at + 1 for r in ledger)  # it took a share again
    due = {r["name"]: r["intended_at"] for r in ledger}
    assert all(_epoch(r["dateLaunched"]) >= due[r["name"]] - 0.01 for r in received)
    assert all(0 <= r["sent_at"] - r["intended_at"] <= 1.0 for r in ledger)  # the 1 s rule, on the master's clock
    print(f"across hosts, w1 paused 3 s, w2 +2 s: scheduled {s['scheduled']}, simulator {len(received)}, master's "
          f"ledger {len(ledger)}, summary {s['launched']} (late {s['late']}, missed {s['missed_starts']}), offsets "
          f"{offsets}, achieved {s['achieved_rate_per_s']}/s of {s['target_rate_per_s']}/s")


@NAMESPACES
def test_across_hosts_a_killed_workers_loss_is_bounded_and_its_copy_merges(fleet: Fleet) -> None:
    scenario = write_scenario(fleet.tmp, rate=20, duration="14s")
    fleet.start_run(scenario)
    fleet.wait_launches(60)
    fleet.procs["w1"].kill()
    s = fleet.wait_master()
    run_id = s["run_id"]
    ledger, received = fleet.launches(run_id), fleet.received(run_id)
    ids = {r["execution_id"] for r in ledger if r["execution_id"]}
    got = {r["id"] for r in received}
    assert s["launched"] == len(ledger) and ids <= got and s["duplicate_launches"] == 0, fleet.logs()[-4000:]
    # The killed worker is lost and its stream incomplete; the survivor's stream is complete (on a starved machine it
    # may be declared lost for a moment too, and rejoin: its DONE still brings every line).
    (lost,) = s["ledger"]["incomplete_workers"]
    assert lost in s["workers_lost"]
    assert len(got - ids) <= s["possibly_sent"] and s["passed"] is False
    local = list((fleet.tmp / "w1-disk" / run_id / "local").glob("ledger-*.jsonl"))
    merged = subprocess.run([sys.executable, "-m", "sim.cli", "ledger", "merge", run_id, *map(str, local),
                             "--ledger-dir", str(fleet.runs)], capture_output=True, text=True, env=fleet.env,
                            timeout=60)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    ledger = fleet.launches(run_id)
    ids = {r["execution_id"] for r in ledger if r["execution_id"]}
    seqs = {r["seq"] for r in ledger}
    assert len(seqs) == len(ledger) and ids <= got
    # Missing now: only what the killed worker had in flight at the kill (sent, never answered, never written):
    # its seqs (its residue of the first split), never the survivor's, and within the stated bound.
    residue = next(r["seq"] for r in ledger if r["worker"] == lost) % 2
    missing = {int(r["name"].rsplit("-", 1)[1]) for r in received if r["id"] not in ids}
    assert all(seq % 2 == residue for seq in missing) and len(missing) <= s["possibly_sent"], (missing, residue)
    # The survivor took the dead worker's share over: from some seq on it sent every one, to the end.
    resumed = max(set(range(s["scheduled"])) - seqs - missing) + 1
    assert all(r["worker"] != lost for r in ledger if r["seq"] >= resumed)
    assert any(r["seq"] % 2 == residue for r in ledger if r["seq"] >= resumed)
    print(f"kill -9 across hosts: simulator {len(got)}, master's ledger {s['launched']}, stated bound "
          f"{s['possibly_sent']}, after merge {len(ids)} (missing: {len(missing)}, in flight at the kill)")
