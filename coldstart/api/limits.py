"""Request-body cap for everything that is not a multipart upload.

JSON bodies (onboarding, upload-by-path, admin) are parsed in full before any
pydantic `max_length` runs, so the cap has to sit in front of the app: this ASGI
middleware reads the body as it streams, answers 413 as soon as it passes
`serve.max_json_bytes` (or at once when `Content-Length` says it will), and
otherwise hands the app the buffered body. Multipart uploads have their own,
larger cap (`serve.max_upload_bytes`), enforced while streaming in the route.

Before answering 413 the middleware reads and drops what the client sends of the
refused body, up to `DRAIN_BYTES` past the cap: a client that writes the whole body
before it reads (Python's `urllib`, most simple clients) would otherwise find the
connection reset under its last write and never see the 413. A client that asked
`Expect: 100-continue` has sent nothing yet and gets the 413 at once; a declared
length past the bound is refused at once too (draining it would cost more than a
reset).
"""

from __future__ import annotations

import json

__all__ = ["BodyLimitMiddleware", "DRAIN_BYTES"]

DRAIN_BYTES = 16 * 1024 * 1024  # at most this much of a refused body is read and dropped


class BodyLimitMiddleware:
    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        if ctype.startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length", b"").decode("latin-1")
        waits = headers.get(b"expect", b"").lower() == b"100-continue"
        if length.isdigit() and int(length) > self.limit:
            # Refused before parsing a byte; what the client already sends is drained.
            if not waits and int(length) <= self.limit + DRAIN_BYTES:
                await self._drain(receive, int(length))
            await self._refuse(send)
            return
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                if message.get("more_body", False):
                    await self._drain(receive, DRAIN_BYTES)
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    @staticmethod
    async def _drain(receive, budget: int) -> None:
        """Read and drop the rest of the body, until it ends or `budget` bytes are read."""
        drained = 0
        while drained < budget:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send) -> None:
        payload = json.dumps(
            {
                "detail": f"request body exceeds the limit of {self.limit} bytes (serve.max_json_bytes)",
                "message": f"body: larger than {self.limit} bytes (serve.max_json_bytes)",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
