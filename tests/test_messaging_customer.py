"""An Open Messaging customer on its own (``sim.load.messaging``): scripts as a user writes them (and one clear
error for a bad one), what a customer does with the replies it reads — checks, endings, replies out of order,
unread replies at the end — against a mock platform and a scripted mailbox (no network, no sleeping), and the
receiver's replies endpoint refusing what is not one of the run's processes."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sim.errors import ConfigError
from sim.load.client import FlowClient, TokenManager
from sim.load.identity import IdentityFactory
from sim.load.inbox import Reply
from sim.load.messaging import chat
from sim.load.messaging_script import MessageSpec, MessagingSpec, ReplyExpect
from sim.load.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "scenarios" / "open-messaging.toml"


def _edit(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert old in text, old
    p = tmp_path / "om.toml"
    p.write_text(text.replace(old, new, 1))
    return p


def test_the_shipped_scenario_loads() -> None:
    sc = load_scenario(SHIPPED)
    assert sc.kind == "messaging" and sc.messaging is not None and not sc.follow
    assert [len(f.messages) for f in sc.flows] == [4, 2]
    assert sc.flows[1].messages[-1].expect.ends == "transferred"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('integration = "0be11a5e-0000-4000-8000-000000000030"', 'integration = "../etc"', "messaging.integration"),
    ('listen = "127.0.0.1:0"', 'listen = "localhost"', "must be HOST:PORT"),
    ("settle_s = 2.0", "settle_s = 20.0", "shorter than reply_timeout_s"),
    ('expect = { contains = "what name" }', 'expect = { regex = "order (" }', "is not a regular expression"),
    ('expect = { contains = "what name" }', 'expect = { ends = "exploded" }', "must be one of"),
    ('expect = { contains = "what name" }', 'expect = { colour = "red" }', "unknown field"),
    ('say = ["hi", "hello", "good morning"]', 'say = ["hi {identity.shoe_size}"]', "unknown placeholder"),
    ('say = ["hi", "hello", "good morning"]', "say = []", "needs what the customer writes"),
    ('secret_env = "FLOWSIM_WEBHOOK_SECRET"', 'secret_env = "NOT A NAME"', "must name an environment variable"),
    ('kind = "messaging"', 'kind = "conversation"', "unknown field"),
])
def test_bad_messaging_scenarios_are_one_clear_error(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario(_edit(tmp_path, old, new))
    assert message in str(err.value)


def test_a_messaging_scenario_needs_its_table(tmp_path: Path) -> None:
    text = SHIPPED.read_text()
    start, end = text.index("[messaging]"), text.index("[[flows]]")
    (tmp_path / "om.toml").write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError, match=r"needs a \[messaging\] table"):
        load_scenario(tmp_path / "om.toml")


def test_reply_expectations_say_what_broke() -> None:
    e = ReplyExpect(contains="order", regex=r"\d+", not_contains="sorry", one_of=("yes", "no"),
                    quick_replies=("Track",), sender="Bot")
    assert e.failures(["Your order 12, yes"], ["track"], ["Bot"]) == []
    broke = e.failures(["Sorry, maybe later"], [], ["Human"])
    assert [b["check"] for b in broke] == ["contains", "regex", "not_contains", "one_of", "quick_replies", "sender"]
    texts = [b["text"] for b in broke]
    assert "replies 'Sorry, maybe later' do not contain 'order'" in texts and "quick replies [] lack ['Track']" in texts
    assert broke[-1] == {"check": "sender", "expected": "Bot", "got": "['Human']",
                         "text": "replies from ['Human'], expected Bot"}


class _Mailbox:
    """Replies scripted per message: after the n-th message is posted, ``plan[n]`` arrives; ``left`` is what is
    still unread when the customer leaves."""

    def __init__(self, plan: dict[int, list[Reply]], left: list[Reply] | None = None) -> None:
        self.plan, self.left, self.posted, self.waiting = plan, left or [], 0, False

    def expect(self, customer_id: str) -> None:
        self.waiting = True

    def wait(self, customer_id: str, until: float) -> list[Reply]:
        got = self.plan.pop(self.posted, [])
        return got

    def forget(self, customer_id: str) -> list[Reply]:
        self.waiting = False
        return self.left

    def close(self) -> None:
        pass


def _reply(i: int, text: str, *, at: str, quick: tuple[str, ...] = ()) -> Reply:
    return Reply(message_id=f"r{i}", to_id="cust", text=text, received_at=time.time(), originating_entity="Bot",
                 conversation_id="conv-1", quick_replies=quick, type="Text", time=at)


def _platform(box: _Mailbox, posted: list[dict[str, Any]]) -> FlowClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        if request.method == "PUT":
            return httpx.Response(200, json={})
        posted.append(orjson.loads(request.content))
        box.posted += 1
        return httpx.Response(200, json={"id": f"m{box.posted}", "conversationId": "conv-1"})

    transport = httpx.MockTransport(answer)
    tokens = TokenManager(login_url="http://login.test", client_id="c", client_secret="s", transport=transport,
                          spawn=lambda fn: fn())
    return FlowClient(api_url="http://api.test", tokens=tokens, transport=transport, sleep=lambda _s: None)


def _chat(box: _Mailbox, script: tuple[MessageSpec, ...], posted: list[dict[str, Any]], **spec: Any) -> Any:
    m = MessagingSpec(integration="i-1", reply_timeout_s=0.2, settle_s=0.0, **spec)
    return chat(_platform(box, posted), box, m, script, identity=IdentityFactory(seed=1).make(3), seq=3,
                run_id="r1", prefix="flowsim", flow_id="f-1", rng=random.Random(1), think_time_s=0.0, max_turns=10,
                sleep=lambda _s: None)


def test_a_customer_reads_each_reply_checks_it_and_sees_the_transfer() -> None:
    box = _Mailbox({1: [_reply(1, "Hello", at="10:00:01"), _reply(2, "What can I help you with?", at="10:00:02")],
                    2: [_reply(4, "Connecting you to an agent.", at="10:00:05"), _reply(3, "Sure.", at="10:00:04")]},
                   left=[_reply(5, "An agent will be with you", at="10:00:06")])
    script = (MessageSpec(say=("hi",), expect=ReplyExpect(contains="help you")),
              MessageSpec(say=("agent please {identity.first_name}",), expect=ReplyExpect(ends="transferred")),
              MessageSpec(say=("never said",)))
    posted: list[dict[str, Any]] = []
    conv = _chat(box, script, posted, transferred_when="connecting you to an agent")
    assert conv.end == "transferred" and conv.conversation_id == "conv-1" and not box.waiting
    assert [p["channel"]["from"]["id"] for p in posted] == ["flowsim-r1-3", "flowsim-r1-3"]
    assert posted[1]["text"].startswith("agent please ") and posted[0]["metadata"] == {"flowsimRun": "r1"}
    assert [r["id"] for r in conv.replies] == ["r1", "r2", "r4", "r3", "r5"] and conv.replies[-1]["unread"]
    assert conv.out_of_order == 1  # r3 was made before r4, which came first
    assert conv.failures == ["message 2: transferred with 1 scripted message(s) unsent"]
    assert [t["replies"] for t in conv.turns] == [["r1", "r2"], ["r4", "r3"]]


def test_no_reply_ends_the_conversation_and_breaks_the_script() -> None:
    box = _Mailbox({1: [_reply(1, "Hello", at="1")]})
    script = (MessageSpec(say=("hi",), expect=ReplyExpect(contains="goodbye")), MessageSpec(say=("anyone?",)))
    conv = _chat(box, script, [])
    assert conv.end == "no_reply" and len(conv.turns) == 2 and conv.turns[1]["reply_ms"] is None
    assert conv.failures == ["message 1: replies 'Hello' do not contain 'goodbye'",
                             "message 2: no reply within 0.2 s"]


def _hub_thread() -> tuple[Any, threading.Event, list[Any]]:
    ready, holder = threading.Event(), []

    def run() -> None:
        import gevent

        from sim.run.replies import ReplyHub

        hub = ReplyHub("a-webhook-secret-long-enough", host="127.0.0.1", port=0).start()
        stopper = gevent.get_hub().loop.async_()
        stopper.start(hub.stop)
        holder.extend([hub, stopper])
        ready.set()
        hub.receiver.server.serve_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    return t, ready, holder


def test_the_replies_endpoint_answers_only_the_runs_processes() -> None:
    from sim.run.replies import replies_key

    t, _ready, (hub, stopper) = _hub_thread()
    try:
        url = hub.receiver.replies_url
        key = replies_key("a-webhook-secret-long-enough")
        no_key = httpx.post(url, content=b"{}")
        wrong = httpx.post(url, content=b"{}", headers={"X-Flowsim-Key": "0" * 64})
        bad = httpx.post(url, content=b"{", headers={"X-Flowsim-Key": key})
        get = httpx.get(url, headers={"X-Flowsim-Key": key})
        good = httpx.post(url, content=b'{"take": ["c1"], "forget": ["c2"]}', headers={"X-Flowsim-Key": key})
    finally:
        stopper.send()
        t.join(10)
    assert (no_key.status_code, wrong.status_code, bad.status_code, get.status_code) == (401, 401, 400, 405)
    assert good.status_code == 200 and good.json() == {"replies": {}, "left": {"c2": []}}


def test_preflight_refuses_an_integration_that_posts_elsewhere(tmp_path: Path) -> None:
    """A run whose replies would go to another URL than its receiver's is refused before it starts."""
    import os
    import subprocess
    import sys

    from sim.platform.org import default_org
    from sim.platform.server import SimulatorThread

    scenario = _edit(tmp_path, 'listen = "127.0.0.1:0"',
                     'listen = "127.0.0.1:0"\npublic_url = "https://hooks.example.com/flowsim"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYS_")}
    with SimulatorThread(default_org()) as sim:
        r = subprocess.run([sys.executable, "-m", "sim.cli", "validate", str(scenario), "--target", sim.url],
                           capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and "not to this run's receiver 'https://hooks.example.com/flowsim'" in r.stdout + r.stderr


def test_the_receivers_counts_so_far_reach_the_live_figures() -> None:
    """The terminal, the web tab and Prometheus read the section from live stats: the hosting process sets the
    receiver's counts of this run there (absolute, this run's only; the summary counts the ledger's record)."""
    from collections import Counter
    from types import SimpleNamespace

    from sim.drivers.chats import Chats
    from sim.load.stats import RunStats
    from sim.run.replies import ReplyHub
    from sim.run.webhook import count_live

    hub = ReplyHub("a-webhook-secret-long-enough", host="127.0.0.1", port=0)  # not started: no socket needed
    env = SimpleNamespace(flowsim_hub=hub, flowsim_hub_counts=Counter({"routed": 2}))
    hub.inbox.counts.update(routed=7, duplicate=1)
    stats = RunStats()
    plan: Any = SimpleNamespace(scenario=load_scenario(SHIPPED))
    count_live(env, plan, stats)
    count_live(env, plan, stats)  # twice: still the same figures
    chats = Chats.of(stats)
    assert chats.receiver == {"routed": 5, "duplicate": 1}
    metric = next(m for m in chats.metrics() if m.name == "flowsim_webhook_deliveries")
    assert metric.values == {"routed": 5.0, "duplicate": 1.0}


def test_webhook_options_replace_the_receivers_address_and_belong_to_messaging_runs() -> None:
    from sim.load.overrides import with_webhook

    sc = with_webhook(load_scenario(SHIPPED), listen="0.0.0.0:8099", public_url="https://hooks.example.com/w")
    assert sc.messaging is not None
    assert (sc.messaging.listen, sc.messaging.public_url) == ("0.0.0.0:8099", "https://hooks.example.com/w")
    with pytest.raises(ConfigError, match="are for kind"):
        with_webhook(load_scenario(ROOT / "scenarios" / "smoke.toml"), listen="127.0.0.1:8099", public_url=None)
    with pytest.raises(ConfigError, match="is not an http"):
        with_webhook(load_scenario(SHIPPED), listen=None, public_url="ftp://x")


def test_a_workers_mailbox_reads_its_customers_replies_from_the_hub_and_none_is_lost_when_it_leaves() -> None:
    """A worker's customers read through the hub's replies endpoint (long poll): replies reach the right customer,
    one that came before its customer asked is kept (the run's prefix), and what is unread when a customer leaves
    comes back with the leaving — after that, the hub counts its replies as after the customer gave up."""
    from sim.run.replies import RemoteMailbox, replies_key
    from tests.test_inbox import _reply, _signed

    secret = "a-webhook-secret-long-enough"
    t, _ready, (hub, stopper) = _hub_thread()
    box = RemoteMailbox(hub.receiver.replies_url, replies_key(secret))

    def deliver(mid: str, to: str) -> int:
        raw, headers = _signed(_reply(mid, to), secret)
        return httpx.post(hub.receiver.url, content=raw, headers=headers).status_code

    try:
        hub.inbox.accept("run1-")
        box.expect("run1-1")
        statuses = [deliver("m1", "run1-1"), deliver("m2", "run1-1"), deliver("m3", "run1-2")]
        got: list[Reply] = []
        for _ in range(50):  # bounded: until both replies are read
            got += box.wait("run1-1", time.time() + 0.2)
            if len(got) >= 2:
                break
        box.expect("run1-2")
        statuses.append(deliver("m4", "run1-2"))
        left = box.forget("run1-2")
        statuses.append(deliver("m5", "run1-2"))
        mine = box.forget("run1-1")
    finally:
        box.close()
        stopper.send()
        t.join(10)
    assert statuses == [200, 200, 200, 200, 200]
    assert [r.message_id for r in got] == ["m1", "m2"] and mine == []
    assert sorted(r.message_id for r in left) == ["m3", "m4"]
    assert hub.inbox.counts == {"routed": 4, "after_give_up": 1}


def test_a_messaging_customer_says_back_what_a_reply_gave_it() -> None:
    box = _Mailbox({1: [_reply(1, "Your ticket is T-4711.", at="1")], 2: [_reply(2, "Ticket 4711 is open.", at="2")]})
    script = (MessageSpec(say=("hi",), expect=ReplyExpect(capture={"ticket": r"T-(\d+)", "order": r"order (\d+)"})),
              MessageSpec(say=("what about ticket {capture.ticket}{capture.order}?",)))
    posted: list[dict[str, Any]] = []
    conv = _chat(box, script, posted)
    assert posted[1]["text"] == "what about ticket 4711?" and conv.end == "script_ended"
    assert [b["check"] for b in conv.turns[0]["broken"]] == ["capture order"]
