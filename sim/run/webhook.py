"""The webhook side of an Open Messaging run, for the Locust processes (``sim.run.fleet`` calls these; every
function does nothing for other kinds of traffic):

- :func:`host`: the master (or the single process) starts flowsim's receiver once (it outlives a web UI's runs),
  points a flowsim simulator's integration at it when the scenario names no ``public_url``, keeps every reply for
  this run's customer ids, and hands the plan on with ``replies_url`` (where workers read replies);
- :func:`mailbox`: where a load process's customers read their replies (the hub itself, or the hub over HTTP);
- :func:`count_live`: the receiver's counts so far, in the live figures (terminal, web tab, Prometheus);
- :func:`record`: at the end, what the receiver made of this run's deliveries goes to the ledger (the summary
  counts them from there);
- :func:`stop`: the receiver closes with the process.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections import Counter
from typing import Any

import httpx
import orjson

from sim.errors import FlowsimError
from sim.load.ledger import run_dir
from sim.load.messaging import Mailbox
from sim.load.records import ReceiverRecord
from sim.load.stats import RunStats
from sim.logs import get_logger
from sim.run.plan import RunPlan, credentials, webhook_secret
from sim.run.replies import ReplyHub, RemoteMailbox, replies_key

__all__ = ["host", "mailbox", "record", "stop", "count_live"]

_log = get_logger(component="webhook")


def _listen(plan: RunPlan) -> tuple[str, int]:
    m = plan.scenario.messaging
    assert m is not None
    host, _, port = m.listen.rpartition(":")
    return host.strip("[]"), int(port)


def _point_simulator(plan: RunPlan, url: str) -> None:
    """A flowsim simulator: its integration posts to this receiver from now on."""
    m = plan.scenario.messaging
    assert m is not None
    cid, sec = credentials(plan)
    verify: bool | str = plan.scenario.ca_bundle or True
    with httpx.Client(timeout=10, verify=verify) as http:
        tok = http.post(f"{plan.target.login_url}/oauth/token", auth=(cid, sec), data={"grant_type": "client_credentials"})
        if tok.status_code != 200:
            raise FlowsimError(f"could not point the simulator's integration at the receiver: token HTTP {tok.status_code}")
        r = http.patch(f"{plan.target.api_url}/api/v2/conversations/messaging/integrations/open/{m.integration}",
                       content=orjson.dumps({"outboundNotificationWebhookUrl": url}),
                       headers={"Authorization": f"Bearer {tok.json()['access_token']}",
                                "Content-Type": "application/json"})
        if r.status_code != 200:
            raise FlowsimError(f"could not point integration {m.integration} at the receiver {url}: HTTP "
                               f"{r.status_code} {r.text[:200]}")


def host(env: Any, plan: RunPlan) -> RunPlan:
    """The hosting process, as a run begins: the receiver running, this run's replies kept, the plan to hand on."""
    m = plan.scenario.messaging
    if m is None:
        return plan
    hub: ReplyHub | None = getattr(env, "flowsim_hub", None)
    if hub is None:
        host_name, port = _listen(plan)
        tls = (m.tls_cert, m.tls_key) if m.tls_cert and m.tls_key else None
        hub = ReplyHub(webhook_secret(plan), host=host_name, port=port, tls=tls).start()
        env.flowsim_hub = hub
        _log.info("webhook.listening", url=hub.receiver.url, public_url=m.public_url)
    if m.public_url is None:  # preflight let this through only for an integration posting to loopback: a simulator
        _point_simulator(plan, hub.receiver.url)
    hub.inbox.accept(f"{plan.scenario.tag_prefix}-{plan.run_id}-")
    env.flowsim_hub_counts = Counter(hub.inbox.counts)
    return dataclasses.replace(plan, replies_url=hub.receiver.replies_url)


def mailbox(env: Any, plan: RunPlan) -> Mailbox | None:
    """Where this process's customers read their replies (None: not a messaging run)."""
    if plan.scenario.messaging is None:
        return None
    hub: ReplyHub | None = getattr(env, "flowsim_hub", None)
    if hub is not None:
        return hub
    if not plan.replies_url:
        raise FlowsimError("an Open Messaging plan without replies_url: the master hosts no receiver")
    return RemoteMailbox(plan.replies_url, replies_key(webhook_secret(plan)), verify=plan.scenario.ca_bundle or True)


def _this_run(env: Any, hub: ReplyHub) -> Counter[str]:
    counts = Counter(hub.inbox.counts)
    counts.subtract(getattr(env, "flowsim_hub_counts", Counter()))
    return counts


def count_live(env: Any, plan: RunPlan, stats: RunStats) -> None:
    """Set the receiver's outcomes so far into the live stats of the process that hosts it (absolute values: the
    final summary is counted from the ledger's ``receiver`` record instead)."""
    hub: ReplyHub | None = getattr(env, "flowsim_hub", None)
    if plan.scenario.messaging is None or hub is None:
        return
    for outcome, n in _this_run(env, hub).items():
        if n > 0:
            stats.counters[f"receiver_{outcome}"] = n


def record(env: Any, plan: RunPlan) -> None:
    """The receiver's outcomes during this run, as one ``receiver`` ledger record (hosting process, at the end)."""
    hub: ReplyHub | None = getattr(env, "flowsim_hub", None)
    if plan.scenario.messaging is None or hub is None:
        return
    counts = _this_run(env, hub)
    rec = ReceiverRecord(run_id=plan.run_id, worker=f"receiver-{os.getpid()}", at=round(time.time(), 6),
                         counts={k: v for k, v in sorted(counts.items()) if v > 0})
    path = run_dir(plan.ledger_dir, plan.run_id) / f"ledger-{socket.gethostname()}-{os.getpid()}-receiver.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(orjson.dumps(rec.to_json()) + b"\n")
    except OSError as exc:
        _log.error("webhook.unrecorded", path=str(path), error=exc.strerror or str(exc))


def stop(env: Any) -> None:
    hub: ReplyHub | None = getattr(env, "flowsim_hub", None)
    if hub is not None:
        hub.stop()
        env.flowsim_hub = None
