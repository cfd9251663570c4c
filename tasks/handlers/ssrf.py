"""Refuse requests to loopback, private and link-local addresses (CONTRACT.md section 3).

Checked after DNS resolution and again on every redirect, so a public name that resolves
to 127.0.0.1 or a redirect to the metadata service is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from engine.errors import StepError
from settings import Settings


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def check_url(url: str, settings: Settings) -> None:
    """Raise a non-retryable StepError if ``url`` may not be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise StepError(
            f"only http and https URLs can be called, not {url!r}", error_type="invalid_url"
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise StepError(f"URL has no host: {url!r}", error_type="invalid_url")
    if settings.action_allow_private or host in settings.action_allowed_hosts:
        return
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        raise StepError(
            f"cannot resolve host {host!r}: {exc}", error_type="connection_error", retryable=True
        ) from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if _forbidden(ip):
            raise StepError(
                f"refusing to call {host} ({ip}): private, loopback and link-local addresses are blocked "
                "(set CANVASFLOW_ACTION_ALLOW_PRIVATE=1 or add the host to CANVASFLOW_ACTION_ALLOWED_HOSTS)",
                error_type="forbidden_address",
            )
