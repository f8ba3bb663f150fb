"""A small fake OpenAI-compatible server for the remote backend's tests (not a product server).

http.server in a thread on 127.0.0.1, on a free port, stopped by the test that starts it (use
the `fake_openai` fixture or `with FakeOpenAI(...) as server`). It streams a scripted reply one
word per chunk, as vLLM and llama.cpp do, and can misbehave on purpose: `mode` is one of

    "stream"    a normal SSE stream (role chunk, a chunk per word, finish_reason, usage, [DONE])
    "json"      answers a streaming request with a whole JSON completion (a server that does
                not stream)
    "cut"       stops after `cut_after` chunks by closing the connection mid-body
    "nodone"    ends the body cleanly after `cut_after` chunks, without finish_reason or [DONE]
    "hang"      sends `cut_after` chunks, then keep-alive comments until the client goes away
                (bounded by HANG_SECONDS), and records that it went away in `disconnected`
    "reject"    400 with an OpenAI-style error message
    "fail"      500

`tokenize="vllm"` or "llama.cpp" serves that server's token counting. `api_key` set: every
request needs `Authorization: Bearer <key>` (401 otherwise). A model not in `models` gets 404.
Every request (path, headers, JSON body) is kept in `requests`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

HANG_SECONDS = 20.0


class FakeOpenAI:
    def __init__(
        self,
        reply: str = "Whisk two eggs with milk, then fold in the flour.",
        *,
        models: tuple[str, ...] = ("fake-chef",),
        mode: str = "stream",
        api_key: str | None = None,
        cut_after: int = 3,
        usage: bool = True,
        max_model_len: int | None = None,
        props_n_ctx: int | None = None,
        chunk_delay: float = 0.0,
        tokenize: str | None = None,
    ) -> None:
        self.reply = reply
        self.models = models
        self.mode = mode
        self.api_key = api_key
        self.cut_after = cut_after
        self.usage = usage
        self.max_model_len = max_model_len
        self.props_n_ctx = props_n_ctx
        self.chunk_delay = chunk_delay
        #: "vllm": POST /tokenize takes messages; "llama.cpp": /apply-template, then /tokenize
        self.tokenize = tokenize
        self.requests: list[dict[str, Any]] = []
        self.disconnected = threading.Event()
        self.hanging = threading.Event()  # set once a "hang" stream is waiting
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life ----------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v1/chat/completions"]

    def pieces(self, max_tokens: int | None = None) -> list[str]:
        words = re.findall(r"\S+\s*", self.reply)
        return words[:max_tokens] if max_tokens else words


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing ------------------------------------------------------------------------------
    def _record(self, body: Any) -> None:
        self.server_state.requests.append(
            {"path": self.path, "headers": dict(self.headers), "body": body}
        )

    def _send_json(self, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "code": status}})

    def _authorized(self) -> bool:
        key = self.server_state.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Invalid API key", "authentication_error")
        return False

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"data: {text}\n\n".encode())

    # --- routes --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record(None)
        if not self._authorized():
            return
        fake = self.server_state
        if self.path == "/v1/models":
            entries = []
            for m in fake.models:
                entry: dict[str, Any] = {"id": m, "object": "model", "owned_by": "test"}
                if fake.max_model_len:
                    entry["max_model_len"] = fake.max_model_len
                entries.append(entry)
            self._send_json(200, {"object": "list", "data": entries})
        elif self.path == "/props" and fake.props_n_ctx:
            self._send_json(200, {"default_generation_settings": {"n_ctx": fake.props_n_ctx}})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self._record(body)
        if not self._authorized():
            return
        fake = self.server_state
        if self.path == "/tokenize" and fake.tokenize == "vllm":
            words = sum(len(m["content"].split()) for m in body["messages"])
            self._send_json(200, {"count": words + 3, "max_model_len": 1024, "tokens": []})
            return
        if self.path == "/apply-template" and fake.tokenize == "llama.cpp":
            text = "".join(f"<{m['role']}>{m['content']}\n" for m in body["messages"])
            self._send_json(200, {"prompt": text + "<assistant>"})
            return
        if self.path == "/tokenize" and fake.tokenize == "llama.cpp":
            if "content" not in body:
                self._error(400, "content is required")
                return
            self._send_json(200, {"tokens": list(range(len(body["content"].split())))})
            return
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._error(404, f"no route {self.path}")
            return
        if body.get("model") not in fake.models:
            self._error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            return
        if fake.mode == "reject":
            self._error(400, "temperature must be at most 2, got 5")
            return
        if fake.mode == "fail":
            self._error(500, "CUDA out of memory", "internal_error")
            return
        pieces = fake.pieces(body.get("max_tokens"))
        if fake.mode == "json":
            self._send_json(200, _completion(body, "".join(pieces)))
            return
        self._stream(body, pieces)

    def _stream(self, body: dict[str, Any], pieces: list[str]) -> None:
        fake = self.server_state
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chat = "messages" in body  # else /v1/completions: "text" instead of "delta"
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": body["model"]}
        if chat:
            self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        limit = fake.cut_after if fake.mode in ("cut", "nodone", "hang") else len(pieces)
        for piece in pieces[:limit]:
            if fake.chunk_delay:
                time.sleep(fake.chunk_delay)
            choice: dict[str, Any] = {"index": 0}
            choice.update({"delta": {"content": piece}} if chat else {"text": piece})
            if body.get("logprobs") and chat:
                n = int(body.get("top_logprobs") or 0)
                top = [{"token": piece, "logprob": -0.25}, {"token": "<alt>", "logprob": -2.5}]
                choice["logprobs"] = {
                    "content": [{"token": piece, "logprob": -0.25, "top_logprobs": top[:n]}]
                }
            elif body.get("logprobs"):  # the legacy completions format
                top = dict(list({piece: -0.25, "<alt>": -2.5}.items())[: int(body["logprobs"])])
                choice["logprobs"] = {
                    "tokens": [piece],
                    "token_logprobs": [-0.25],
                    "top_logprobs": [top],
                }
            self._event({**base, "choices": [choice]})
        if fake.mode == "cut":
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # mid-body: no terminating chunk
            return
        if fake.mode == "nodone":
            self._chunk(b"")
            return
        if fake.mode == "hang":
            self._hang()
            return
        reason = "length" if len(pieces) < len(fake.pieces()) else "stop"
        end = {"delta": {}} if chat else {"text": ""}
        self._event({**base, "choices": [{"index": 0, **end, "finish_reason": reason}]})
        if fake.usage and (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 11, "completion_tokens": len(pieces)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self._event({**base, "choices": [], "usage": usage})
        self._event("[DONE]")
        self._chunk(b"")

    def _hang(self) -> None:
        """Keep the stream open with comments until the client closes it (bounded)."""
        fake = self.server_state
        fake.hanging.set()
        deadline = time.monotonic() + HANG_SECONDS
        try:
            while time.monotonic() < deadline:
                self._chunk(b": waiting\n\n")
                time.sleep(0.02)
        except OSError:
            fake.disconnected.set()
        self.close_connection = True


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
    }


@pytest.fixture
def openai_server() -> Iterator[Callable[..., FakeOpenAI]]:
    """Start fake servers with `openai_server(**options)`; each is stopped after the test."""
    servers: list[FakeOpenAI] = []

    def start(**options: Any) -> FakeOpenAI:
        server = FakeOpenAI(**options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
