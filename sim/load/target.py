"""Where the platform is: ``embedded`` (flowsim's simulator), a region name, or a base URL."""

from __future__ import annotations

from dataclasses import dataclass

import ipaddress
from urllib.parse import urlsplit

from sim.errors import ConfigError

__all__ = ["REGIONS", "REGION_TIME_ZONES", "Target", "resolve_target", "check_credential_destination",
           "is_loopback"]

_REGIONS: dict[str, tuple[str, str]] = {
    # region: (environment domain, time zone of its data centre's city)
    "us_east_1": ("mypurecloud.com", "America/New_York"), "us_east_2": ("use2.us-gov-pure.cloud", "America/New_York"),
    "us_west_2": ("usw2.pure.cloud", "America/Los_Angeles"), "ca_central_1": ("cac1.pure.cloud", "America/Toronto"),
    "sa_east_1": ("sae1.pure.cloud", "America/Sao_Paulo"), "mx_central_1": ("mxc1.pure.cloud", "America/Mexico_City"),
    "eu_west_1": ("mypurecloud.ie", "Europe/Dublin"), "eu_west_2": ("euw2.pure.cloud", "Europe/London"),
    "eu_central_1": ("mypurecloud.de", "Europe/Berlin"), "eu_central_2": ("euc2.pure.cloud", "Europe/Zurich"),
    "eusc_de_east_1": ("edee1.eusc-pure.cloud", "Europe/Berlin"), "me_central_1": ("mec1.pure.cloud", "Asia/Dubai"),
    "ap_south_1": ("aps1.pure.cloud", "Asia/Kolkata"), "ap_southeast_1": ("apse1.pure.cloud", "Asia/Jakarta"),
    "ap_southeast_2": ("mypurecloud.com.au", "Australia/Sydney"), "ap_northeast_1": ("mypurecloud.jp", "Asia/Tokyo"),
    "ap_northeast_2": ("apne2.pure.cloud", "Asia/Seoul"), "ap_northeast_3": ("apne3.pure.cloud", "Asia/Tokyo"),
}
REGIONS = {region: domain for region, (domain, _zone) in _REGIONS.items()}
"""Region name → environment domain (API host is ``api.<domain>``, login host ``login.<domain>``)."""
REGION_TIME_ZONES = {region: zone for region, (_domain, zone) in _REGIONS.items()}
"""Region name → the time zone the vendor's load-test window is in."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the platform is: API base URL and login base URL."""

    api_url: str
    login_url: str
    embedded: bool = False


def resolve_target(target: str, *, embedded_url: str | None = None) -> Target:
    """API and login URLs for "embedded" (given its URL), a region name, or a base URL."""
    if target == "embedded":
        if embedded_url is None:
            raise ConfigError("the embedded simulator is not running", field="target")
        return Target(api_url=embedded_url, login_url=embedded_url, embedded=True)
    if target in REGIONS:
        domain = REGIONS[target]
        return Target(api_url=f"https://api.{domain}", login_url=f"https://login.{domain}")
    if target.startswith(("http://", "https://")):
        url = target.rstrip("/")
        # The vendor SDK's rule: the login host is the API host with "api." replaced by "login.".
        return Target(api_url=url, login_url=url.replace("://api.", "://login.", 1))
    raise ConfigError(f"{target!r} is not 'embedded', a region ({', '.join(sorted(REGIONS))}) or an http(s) URL",
                      field="target")


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address) is this machine's loopback."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_credential_destination(target: Target, *, simulator: bool) -> None:
    """Raise unless the OAuth client's real credentials (from the environment) may go to ``target``'s login URL:
    over HTTPS to a Genesys Cloud region's login host, to a flowsim simulator over HTTPS, or to this machine's
    loopback (a stand-in the operator started; nothing leaves the host). Never in clear text over a network,
    never to a remote host that is neither a region nor a simulator."""
    url = urlsplit(target.login_url)
    host = url.hostname or ""
    if url.scheme == "https" and host in {f"login.{d}" for d in REGIONS.values()}:
        return
    if is_loopback(host) or (simulator and url.scheme == "https"):
        return
    why = ("in clear text (http) over a network" if url.scheme != "https" and simulator
           else "to a host that is neither a Genesys Cloud region's login host nor a flowsim simulator")
    raise ConfigError(f"refusing to send the OAuth client's credentials {why}: {target.login_url}. Use a region "
                      "name, https://api.<region domain>, or a flowsim simulator", field="target")
