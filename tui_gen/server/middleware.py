"""The API key check and the one log line per request, as one plain ASGI middleware.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: that one buffers the response in a task
of its own, which breaks the disconnect detection a stream relies on. The key check runs
before the request body is read, so a client without the key gets 401 whatever it sent.
The log line is written when the response ends (for a stream: after [DONE] or the client's
disconnect), so it can say how many tokens were generated and how fast:

    POST /v1/chat/completions 200 42 tokens 18.3 tok/s 2.30 s

The key itself is never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from tui_gen.sanitize import sanitize
from tui_gen.server.schemas import error_body

log = logging.getLogger("tui_gen.server")


class AuthAndLog:
    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [0]

        async def send_logged(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if scope["path"].startswith("/v1/") and not self._authorized(scope):
                await _unauthorized(send_logged)
            else:
                await self.app(scope, receive, send_logged)
        finally:
            seconds = time.perf_counter() - t0
            tokens = scope.get("state", {}).get("tokens")
            # the path is the client's (percent-decoded): nothing in it may drive a terminal
            line = f"{sanitize(scope['method'])} {sanitize(scope['path'])} {status[0] or '-'}"
            if tokens is not None:
                rate = tokens / seconds if seconds > 0 else 0.0
                line += f" {tokens} tokens {rate:.1f} tok/s"
            log.info("%s %.2f s", line, seconds)

    def _authorized(self, scope: Any) -> bool:
        key = self.state.api_key
        if not key:
            return True
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                given = value.decode("latin-1")
                scheme, _, token = given.partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(
                    token.strip().encode(), key.encode()
                )
        return False


async def _unauthorized(send: Any) -> None:
    body = json.dumps(
        error_body(
            "missing or wrong API key; send the header 'Authorization: Bearer KEY' with the "
            "key given to tui-gen serve --api-key",
            code="invalid_api_key",
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
        }
    )
    await send({"type": "http.response.body", "body": body})
