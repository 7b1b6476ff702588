"""Request-body cap for everything that is not a multipart upload.

JSON bodies (onboarding, upload-by-path, admin) are parsed in full before any
pydantic `max_length` runs, so the cap has to sit in front of the app: this ASGI
middleware reads the body as it streams, answers 413 as soon as it passes
`serve.max_json_bytes` (or at once when `Content-Length` says it will), and
otherwise hands the app the buffered body. Multipart uploads have their own,
larger cap (`serve.max_upload_bytes`), enforced while streaming in the route.
"""

from __future__ import annotations

import json

__all__ = ["BodyLimitMiddleware"]


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
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(send)  # before reading a byte of the body
            return
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
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
