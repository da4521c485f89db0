"""Where a simulated customer reads the replies the platform posted to flowsim's webhook (Open Messaging runs).

One process of a run hosts the receiver — the master, or the single process — as a :class:`ReplyHub`: its
customers read their replies straight from its inbox. Every other load process (a worker) reads them through a
:class:`RemoteMailbox`: one greenlet long-polls the hub's replies endpoint for all the customers that worker
runs. Replies are kept by customer id (``channel.to.id``), not by worker, so a customer is served wherever it
runs — after a re-split, on a worker that joined late. The hub keeps every reply addressed to one of the run's
customer ids even before that customer asks (:meth:`Inbox.accept`), so none is lost to a race.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from typing import Any

import gevent
import gevent.event
import httpx
import orjson

from sim.load.inbox import Inbox, Reply
from sim.logs import get_logger
from sim.run.receiver import KEY_HEADER, Receiver

__all__ = ["ReplyHub", "RemoteMailbox", "replies_key", "POLL_WAIT_S"]

POLL_WAIT_S = 1.0
"""How long the hub holds a worker's poll when nothing has arrived for its customers."""


def replies_key(secret: str) -> str:
    """The key a load process shows the hub's replies endpoint: derived from the webhook secret every process of
    the run has (from the environment), so the replies never go to a process without it."""
    return hmac.new(secret.encode(), b"flowsim replies endpoint", hashlib.sha256).hexdigest()


class ReplyHub:
    """The receiver and its inbox, in the process that hosts them; a mailbox for that process's customers."""

    def __init__(self, secret: str, *, host: str, port: int, tls: tuple[str, str] | None = None) -> None:
        self._events: dict[str, gevent.event.Event] = {}
        self._pulse = gevent.event.Event()
        self.inbox = Inbox(secret, clock=time.time, on_routed=self._routed)
        self.receiver = Receiver(self.inbox, host=host, port=port, take=self._take, key=replies_key(secret), tls=tls)

    def start(self) -> ReplyHub:
        self.receiver.start()
        return self

    def stop(self) -> None:
        self.receiver.stop()

    def _routed(self, customer_id: str) -> None:
        ev = self._events.get(customer_id)
        if ev is not None:
            ev.set()
        pulse, self._pulse = self._pulse, gevent.event.Event()
        pulse.set()

    # -- a mailbox for this process's customers ------------------------------------------------------
    def expect(self, customer_id: str) -> None:
        self.inbox.expect(customer_id)

    def wait(self, customer_id: str, until: float) -> list[Reply]:
        """The customer's new replies, waiting for one until ``until`` (epoch s) when there are none yet."""
        got = self.inbox.take(customer_id)
        if got or until <= time.time():
            return got
        ev = self._events[customer_id] = gevent.event.Event()
        try:
            ev.wait(max(0.0, until - time.time()))
        finally:
            self._events.pop(customer_id, None)
        return self.inbox.take(customer_id)

    def forget(self, customer_id: str) -> list[Reply]:
        return self.inbox.forget(customer_id)

    def close(self) -> None:
        """Nothing to close: the hub outlives a run (``stop`` ends it)."""

    # -- the replies endpoint, for the run's other processes -----------------------------------------
    def _take(self, body: dict[str, Any]) -> dict[str, Any]:
        left = {cid: [r.to_dict() for r in self.inbox.forget(cid)] for cid in body.get("forget") or ()
                if isinstance(cid, str)}
        ids = [cid for cid in body.get("take") or () if isinstance(cid, str)]
        wait_s = 0.0 if left else min(2.0, max(0.0, float(body.get("wait_s") or 0.0)))
        out = self._collect(ids)
        deadline = time.monotonic() + wait_s
        while not out and ids and time.monotonic() < deadline:
            self._pulse.wait(max(0.0, deadline - time.monotonic()))
            out = self._collect(ids)
        return {"replies": out, "left": left}

    def _collect(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for cid in ids:
            got = self.inbox.take(cid)
            if got:
                out[cid] = [r.to_dict() for r in got]
        return out


class RemoteMailbox:
    """A worker's customers' replies, fetched from the hub (``replies_url``) by one polling greenlet."""

    def __init__(self, replies_url: str, key: str, *, verify: bool | str = True) -> None:
        self.url = replies_url
        self._client = httpx.Client(timeout=POLL_WAIT_S + 10, headers={KEY_HEADER: key}, verify=verify)
        self._queues: dict[str, deque[Reply]] = {}
        self._events: dict[str, gevent.event.Event] = {}
        self._poller: gevent.Greenlet | None = None
        self._forgetting: dict[str, gevent.event.Event] = {}
        self._left: dict[str, list[Reply]] = {}
        self.errors = 0
        self.down = False
        """The last poll failed: a leaving customer does not wait for the hub."""
        self.log = get_logger(component="replies")

    def expect(self, customer_id: str) -> None:
        self._queues.setdefault(customer_id, deque())
        self._ensure_poller()

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.dead:
            self._poller = gevent.spawn(self._poll)

    def wait(self, customer_id: str, until: float) -> list[Reply]:
        queue = self._queues.get(customer_id)
        if queue is None:
            return []
        if not queue and until > time.time():
            ev = self._events[customer_id] = gevent.event.Event()
            try:
                ev.wait(max(0.0, until - time.time()))
            finally:
                self._events.pop(customer_id, None)
        out = list(queue)
        queue.clear()
        return out

    def forget(self, customer_id: str) -> list[Reply]:
        """What was unread here and at the hub; from now on the hub counts this customer's replies as late. Rides
        on the next poll (within about ``POLL_WAIT_S``), so a reply the poll in flight carries is not lost."""
        if customer_id not in self._queues:
            return []
        done = self._forgetting[customer_id] = gevent.event.Event()
        self._ensure_poller()
        done.wait(0.5 if self.down else POLL_WAIT_S + 15)  # the poll's own timeout is POLL_WAIT_S + 10
        self._forgetting.pop(customer_id, None)
        left = self._left.pop(customer_id, None)
        if left is None:  # the hub could not be reached: what this process holds
            left = list(self._queues.pop(customer_id, ()))
        return left

    def close(self) -> None:
        if self._poller is not None:
            self._poller.kill(block=False)
        self._client.close()

    def _post(self, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            r = self._client.post(self.url, content=orjson.dumps(body))
            if r.status_code == 200:
                data: dict[str, Any] = orjson.loads(r.content)
                self.down = False
                return data
            self.errors += 1
            self.down = True
            self.log.warning("replies.refused", status=r.status_code)
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            self.errors += 1
            self.down = True
            self.log.warning("replies.unreachable", error=type(exc).__name__)
        return None

    def _poll(self) -> None:
        while self._queues or self._forgetting:
            forgetting = [cid for cid in self._forgetting if cid in self._queues]
            data = self._post({"take": [cid for cid in self._queues if cid not in self._forgetting],
                               "forget": forgetting, "wait_s": 0.0 if forgetting else POLL_WAIT_S})
            if data is None:
                gevent.sleep(0.2)
                continue
            for cid, replies in data.get("replies", {}).items():
                queue = self._queues.get(cid)
                if queue is None:
                    continue
                queue.extend(Reply.from_dict(r) for r in replies)
                ev = self._events.get(cid)
                if ev is not None:
                    ev.set()
            for cid in forgetting:
                left = list(self._queues.pop(cid, ())) + [Reply.from_dict(r) for r in data.get("left", {}).get(cid, ())]
                done = self._forgetting.get(cid)
                if done is None:  # its customer stopped waiting (the hub was down): not in its record
                    self.log.warning("replies.unrecorded", customer=cid, replies=len(left))
                    continue
                self._left[cid] = left
                done.set()
            gevent.sleep(0)  # let the customers just woken read, even where sockets do not yield (no monkey patch)
