"""Bearer-token check for write and audience endpoints, active when `COLDSTART_API_TOKEN`
is set, and the start-up rule that keeps a token-less server on loopback."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException, Request, status

__all__ = ["require_token", "is_loopback", "check_bind", "InsecureBind"]


class InsecureBind(RuntimeError):
    """A non-loopback bind address without an API token (and without `--insecure`)."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_bind(host: str, settings, insecure: bool = False) -> None:
    """Refuse to expose uploads and admin reload to the network without a token."""
    if settings.api_token is None and not is_loopback(host) and not insecure:
        raise InsecureBind(
            f"refusing to bind {host} without an API token: uploads, audience data and "
            "/v1/admin/reload would be open to the network. Set COLDSTART_API_TOKEN, "
            "bind 127.0.0.1, or pass --insecure if that is really what you want"
        )


def require_token(request: Request) -> None:
    secret = request.app.state.settings.api_token
    if secret is None:
        return
    expected = secret.get_secret_value().encode()
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    supplied_bytes = supplied.strip().encode()
    # compare_digest takes the same time wherever the strings differ. An empty secret
    # never authorises anything (Settings refuses one; this guards constructed settings).
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(supplied_bytes, expected)
    ):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer <COLDSTART_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
