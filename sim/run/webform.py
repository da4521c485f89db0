"""What Locust's web UI may do to a run, decided here without locust: where the UI and the master may listen,
which form fields may change a run, and which scenario files and targets a form may name.

Locust's ``POST /swarm`` copies *every* form field whose name is a parsed option into the options, shown in the
form or not. So a run takes from the form only :data:`FORM_FIELDS`; every other option is put back to what the
command line said (:func:`pin`). A form's target is ``embedded``, a region, or the start-up target — never a URL
typed into a form, so the OAuth secret never goes where a form says. A form's scenario is a regular ``.toml``
file inside the start-up scenario's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.errors import ConfigError
from sim.load.target import REGIONS, is_loopback

__all__ = ["FORM_FIELDS", "LOCUST_FORM_FIELDS", "pin", "check_form", "check_exposure", "is_loopback"]

FORM_FIELDS = ("flowsim_scenario", "flowsim_target", "flowsim_rate", "flowsim_duration", "flowsim_abort_error_rate")
"""The flowsim options a web-UI START may change."""
LOCUST_FORM_FIELDS = ("num_users", "spawn_rate", "host", "run_time", "user_classes", "profile")
"""Locust's own form fields (flowsim's load shape decides users and run time anyway)."""


def check_exposure(*, web_host: str | None, web_ui: bool, web_login: bool, password_set: bool) -> list[str]:
    """Why this process must not start as configured (empty: fine). ``web_host`` as Locust parsed it ("" or "*":
    every interface)."""
    problems = []
    if web_ui and not is_loopback(web_host or "*"):
        if not web_login:
            problems.append(f"the web UI would listen on {web_host or '*'} (not loopback) without a login: anyone "
                            "who reaches it could start load with your credentials. Use --web-host 127.0.0.1, or "
                            "--web-login with FLOWSIM_WEB_PASSWORD set")
        elif not password_set:
            problems.append("--web-login needs FLOWSIM_WEB_PASSWORD in the environment (the password of the "
                            "flowsim web login)")
    return problems


def pin(options: Any, startup: dict[str, Any]) -> None:
    """Put back every option a form may not change to its start-up value."""
    allowed = set(FORM_FIELDS) | set(LOCUST_FORM_FIELDS)
    for key, value in startup.items():
        if key not in allowed and getattr(options, key, value) != value:
            setattr(options, key, value)


def check_form(options: Any, startup: dict[str, Any]) -> None:
    """A START's scenario and target, as the form set them: ConfigError naming the field when not allowed."""
    scenario = str(options.flowsim_scenario or "")
    if scenario != startup.get("flowsim_scenario"):
        home = Path(str(startup.get("flowsim_scenario") or "scenarios/x.toml")).resolve().parent
        path = Path(scenario).resolve()
        if path.suffix != ".toml" or not path.is_relative_to(home) or not path.is_file():
            raise ConfigError(f"{scenario[:200]!r}: a form may name only a .toml scenario file in {home}",
                              field="flowsim_scenario")
    target = str(options.flowsim_target or "")
    if target and target != startup.get("flowsim_target") and target != "embedded" and target not in REGIONS:
        raise ConfigError(f"{target[:200]!r}: a form's target is 'embedded', a region name or the target given at "
                          "start-up (a URL typed into a form never receives credentials)", field="flowsim_target")
