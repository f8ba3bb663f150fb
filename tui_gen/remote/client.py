"""One OpenAI-compatible endpoint over HTTP (httpx): JSON calls, the SSE stream, and failures.

Every way a remote call can fail becomes one RemoteError line that names the problem and the
fix: the server cannot be reached, TLS fails, the key is refused (401/403), the model or the
path is unknown (404), the server rejects a value (4xx, with the server's own message), the
server fails (5xx), it answers a streaming request with something that is not an event
stream, or the stream stops before the reply is complete. Messages quote the endpoint
without any user:password part, and never the key.

Cancelling: the stream checks the caller's cancel event between chunks, and a watcher thread
shuts the socket down as soon as the event is set, so a stream that is waiting for a slow
server's next chunk ends at once too, and the server sees the connection close (that is how
vLLM, llama.cpp and `tui-gen serve` learn to stop generating).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any

import httpx

from tui_gen.errors import TuiGenError
from tui_gen.sanitize import sanitize

#: seconds to connect, and to wait for the next bytes of an answer (a long prompt's prefill
#: on a loaded server can take minutes before the first chunk)
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 600.0
#: the small probes (context size, token counts) give up quickly: they have a fallback
PROBE_TIMEOUT = 5.0
#: how often the cancel watcher looks at the cancel event
CANCEL_POLL = 0.05
#: characters of a server's error message quoted in ours
MESSAGE_LIMIT = 300


class RemoteError(TuiGenError):
    """A remote call failed; the message is one line for the user. `partial` is the reply text
    that had already streamed in when it failed (the app keeps it)."""

    def __init__(self, message: str, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


class StreamCut(RemoteError):
    """The event stream ended without its closing `data: [DONE]`."""


def _one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    line = " ".join(sanitize(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def server_message(body: bytes | str) -> str:
    """The message in an error body: OpenAI's {"error": {"message"}}, {"error": "..."},
    FastAPI's {"detail": ...}, {"message": ...}, else the text itself (one short line)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return _one_line(text) or "no message"
    if not isinstance(data, dict):
        return _one_line(text)
    for value in (data.get("error"), data.get("detail"), data.get("message")):
        if isinstance(value, dict) and value.get("message"):
            return _one_line(str(value["message"]))
        if isinstance(value, (str, list)) and value:
            return _one_line(value if isinstance(value, str) else json.dumps(value))
    return _one_line(text)


class Endpoint:
    """An OpenAI-compatible API at a base URL such as http://127.0.0.1:8000/v1.

    A URL without a path gets /v1 (what every OpenAI-compatible server serves). Paths are
    relative to the base (`/models`, `/chat/completions`), or to the server's root with
    root=True (`/tokenize`, `/props`: the extensions vLLM and llama.cpp serve beside /v1)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        try:
            parsed = httpx.URL(url.strip())
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise httpx.InvalidURL("no host")
        except (httpx.InvalidURL, TypeError, ValueError):
            raise RemoteError(
                f"{_one_line(url)}: not a valid endpoint URL; give one such as "
                "http://127.0.0.1:8000/v1"
            ) from None
        path = parsed.path.rstrip("/") or "/v1"
        self.url = str(parsed.copy_with(path=path, query=None, fragment=None)).rstrip("/")
        #: the URL as messages and transcripts show it: never a user:password part
        self.display = str(
            parsed.copy_with(path=path, query=None, fragment=None, username=None, password=None)
        ).rstrip("/")
        self.root = self.url.removesuffix("/v1")
        headers = {"User-Agent": "tui-gen"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _url(self, path: str, root: bool) -> str:
        return (self.root if root else self.url) + path

    def _where(self, path: str, root: bool) -> str:
        base = self.display.removesuffix("/v1") if root else self.display
        return base + path

    # --- plain JSON calls ------------------------------------------------------------------
    def get_json(self, path: str, *, root: bool = False, timeout: float | None = None) -> Any:
        return self._json("GET", path, None, root, timeout)

    def post_json(
        self, path: str, body: dict[str, Any], *, root: bool = False, timeout: float | None = None
    ) -> Any:
        return self._json("POST", path, body, root, timeout)

    def _json(self, method: str, path: str, body: Any, root: bool, timeout: float | None) -> Any:
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            resp = self._client.request(method, self._url(path, root), json=body, **kwargs)
        except httpx.HTTPError as e:
            raise self.transport_error(e) from None
        if resp.status_code >= 400:
            raise self.status_error(resp.status_code, resp.content, path, root)
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(
                f"{self._where(path, root)} did not answer with JSON; is {self.display} an "
                "OpenAI-compatible API (its base URL usually ends in /v1)?"
            ) from None

    # --- the stream ------------------------------------------------------------------------
    def stream(
        self, path: str, body: dict[str, Any], cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """POST `body` and yield each JSON object of the SSE answer, until `data: [DONE]`.

        Returns quietly when `cancel` is set (the connection is closed). Raises StreamCut when
        the stream ends without [DONE], RemoteError for everything else."""
        cancel = cancel or threading.Event()
        try:
            with self._client.stream("POST", self._url(path, False), json=body) as resp:
                if resp.status_code >= 400:
                    raise self.status_error(resp.status_code, resp.read(), path, False, body)
                kind = resp.headers.get("content-type", "")
                if "text/event-stream" not in kind:
                    raise RemoteError(
                        f"{self._where(path, False)} answered a streaming request with "
                        f"{_one_line(kind) or 'no content type'} instead of an event stream; "
                        "this server does not stream replies (stream: true), which tui-gen needs"
                    )
                watcher = _CancelWatcher(resp, cancel)
                try:
                    for payload in sse_data(resp.iter_lines()):
                        if cancel.is_set():
                            return
                        if payload.strip() == "[DONE]":
                            return
                        yield self._chunk(payload)
                finally:
                    watcher.stop()
                if not cancel.is_set():
                    raise StreamCut(
                        f"the stream from {self.display} ended before the reply was complete "
                        "(no [DONE]); the server may have crashed or a proxy cut it"
                    )
        except httpx.HTTPError as e:
            if cancel.is_set():
                return  # we closed it
            raise self.transport_error(e, mid_stream=True) from None

    def _chunk(self, payload: str) -> dict[str, Any]:
        try:
            data = json.loads(payload)
        except ValueError:
            raise RemoteError(
                f"{self.display} sent a stream chunk that is not JSON ({_one_line(payload, 80)})"
            ) from None
        if not isinstance(data, dict):
            raise RemoteError(f"{self.display} sent a stream chunk that is not a JSON object")
        if "error" in data:  # vLLM and llama.cpp report a failure inside the stream
            raise RemoteError(
                f"the server stopped with an error: {server_message(json.dumps(data))}"
            )
        return data

    # --- errors ----------------------------------------------------------------------------
    def transport_error(self, e: httpx.HTTPError, mid_stream: bool = False) -> RemoteError:
        """One line for a failure below HTTP (connect, TLS, timeouts, a broken connection)."""
        reason = _one_line(str(e) or type(e).__name__, 160)
        if _is_tls(e):
            return RemoteError(
                f"TLS failed with {self.display} ({reason}); check the server's certificate, "
                "or use http:// if it does not speak TLS"
            )
        if isinstance(e, httpx.ConnectTimeout):
            return RemoteError(
                f"no connection to {self.display} within {CONNECT_TIMEOUT:g} s; check the "
                "host and port, and that the server is running"
            )
        if isinstance(e, httpx.ConnectError):
            return RemoteError(
                f"cannot reach {self.display} ({reason}); is the server running, and are the "
                "host and port right?"
            )
        if isinstance(e, httpx.ReadTimeout):
            return RemoteError(
                f"{self.display} sent nothing for {READ_TIMEOUT:g} s; the server may be "
                "overloaded or stuck"
            )
        if mid_stream and isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
            return StreamCut(
                f"the stream from {self.display} was cut off ({reason}); the server may have "
                "crashed or a proxy closed the connection"
            )
        return RemoteError(f"talking to {self.display} failed ({reason})")

    def status_error(
        self,
        status: int,
        body: bytes,
        path: str,
        root: bool,
        request: dict[str, Any] | None = None,
    ) -> RemoteError:
        """One line for an HTTP error status, with the server's own message."""
        msg = server_message(body)
        where = self._where(path, root)
        if status in (401, 403):
            return RemoteError(
                f"{self.display} refused the request ({status}: {msg}); give the right API "
                "key with --api-key KEY or the TUI_GEN_API_KEY variable"
            )
        if status == 404:
            model = (request or {}).get("model")
            if model is not None:
                return RemoteError(
                    f"{where}: 404 for model {_one_line(str(model), 80)!r} ({msg}); give one "
                    f"the server lists (GET {self.display}/models) with --model NAME"
                )
            return RemoteError(
                f"{where}: not found (404); give the API's base URL, which usually ends in /v1"
            )
        if 400 <= status < 500:
            return RemoteError(f"the server rejected the request ({status}: {msg})")
        return RemoteError(f"the server failed ({status}: {msg})")


def _is_tls(e: BaseException) -> bool:
    seen: BaseException | None = e
    for _ in range(8):  # the chain: httpx -> httpcore -> ssl
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(e)
    return "SSL" in text or "CERTIFICATE" in text.upper()


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each server-sent event. Every OpenAI-compatible server sends one `data:`
    line per event, so each line is yielded as it comes (comments, `event:` and `id:` lines
    are skipped)."""
    for line in lines:
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            yield value[1:] if value.startswith(" ") else value


class _CancelWatcher:
    """Shuts the response's socket down when `cancel` is set: a read waiting for the next
    chunk returns at once, and the server sees the connection close."""

    def __init__(self, resp: httpx.Response, cancel: threading.Event) -> None:
        self.resp, self.cancel = resp, cancel
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="tui-gen-cancel", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.is_set():
            if self.cancel.wait(CANCEL_POLL):
                if not self.done.is_set():
                    self._shut()
                return

    def _shut(self) -> None:
        stream = self.resp.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.done.set()
