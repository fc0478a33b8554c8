"""Where the live API listens and who may stop a run: pure rules, tested without a socket.

``--gashammer-serve [HOST:]PORT`` binds loopback unless a host is written out. Reading is open to
whoever can reach the port; stopping a run is not: with ``--gashammer-serve-token`` set, a stop
must carry it (``Authorization: Bearer TOKEN``), and on a non-loopback bind a stop without a
configured token is always refused, since anyone on the network could end the run.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import NamedTuple

from pytest_gashammer._loop_server import LOOPBACK
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.options import SERVE, SERVE_TOKEN


class Bind(NamedTuple):
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self, port: int | None = None) -> str:
        """The URL a browser on this machine opens (a wildcard bind is reached through loopback)."""
        host = LOOPBACK if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port if port is None else port}/"


def parse_bind(text: str) -> Bind:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; raises ConfigError naming the option and the fix."""
    text = text.strip()
    host, port_text = LOOPBACK, text
    if text.startswith("["):
        closing = text.find("]:")
        if closing < 0:
            raise ConfigError(f"{SERVE} {text!r}: write an IPv6 host as [HOST]:PORT, e.g. [::1]:8080")
        host, port_text = text[1:closing], text[closing + 2 :]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ConfigError(f"{SERVE} {text!r}: write an IPv6 host as [HOST]:PORT, e.g. [::1]:8080")
        if not host:
            raise ConfigError(f"{SERVE} {text!r}: the host before ':' is empty; write PORT or HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(
            f"{SERVE} {text!r}: PORT must be a number, e.g. 8080 (0 picks a free one)"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"{SERVE} {text!r}: PORT {port} is not a TCP port; use 0-65535 (0 picks a free one)"
        )
    return Bind(host, port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost`` counts; a name does not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StopRefused(NamedTuple):
    status: int
    reason: str


def stop_refusal(bind: Bind, token: str | None, authorization: str | None) -> StopRefused | None:
    """Why a stop request is refused (an HTTP status and the reason), or None when it is allowed.

    ``authorization`` is the request's ``Authorization`` header; ``token`` the configured one.
    """
    if token:
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if not presented:
            return StopRefused(401, f"this server needs its {SERVE_TOKEN}: send Authorization: Bearer TOKEN")
        # Constant-time: a token compared byte by byte leaks its prefix through response times.
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return StopRefused(403, f"the token does not match {SERVE_TOKEN}")
        return None
    if not bind.loopback:
        return StopRefused(
            403,
            f"stopping runs over a non-loopback bind ({bind.host}) needs {SERVE_TOKEN}; restart with one",
        )
    return None
