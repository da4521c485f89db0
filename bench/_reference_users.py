"""The reference: Locust's own users posting the same launch body to the same target, back to back.

Selected with ``locust -f bench/_reference_users.py HttpLaunch`` or ``FastHttpLaunch``.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, HttpUser, constant, constant_throughput, task

BODY = os.environ["BENCH_BODY"].encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ.get("BENCH_TOKEN", "bench-token")}


class HttpLaunch(HttpUser):
    wait_time = constant(0)

    @task
    def launch(self) -> None:
        self.client.post("/api/v2/flows/executions", data=BODY, headers=HEADERS, name="launch")


class FastHttpLaunch(FastHttpUser):
    wait_time = constant(0)

    @task
    def launch(self) -> None:
        self.client.post("/api/v2/flows/executions", data=BODY, headers=HEADERS, name="launch")


class PacedFastHttpLaunch(FastHttpUser):
    """Locust's own fastest user at a fixed rate: BENCH_RATE launches/s over all users (memory bench)."""

    wait_time = constant_throughput(float(os.environ.get("BENCH_RATE_PER_USER", "1")))

    @task
    def launch(self) -> None:
        self.client.post("/api/v2/flows/executions", data=BODY, headers=HEADERS, name="launch")
