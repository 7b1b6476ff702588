"""Bearer-token check for write endpoints, active when `COLDSTART_API_TOKEN` is set."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

__all__ = ["require_token"]


def require_token(request: Request) -> None:
    secret = request.app.state.settings.api_token
    if secret is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    # compare_digest takes the same time wherever the strings differ.
    expected = secret.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer <COLDSTART_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
