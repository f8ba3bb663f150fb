"""Remote models: the app and the headless modes on an OpenAI-compatible HTTP endpoint.

A torch-free layer beside the engine: it implements the engine's `ChatBackend` protocol
(engine/protocol.py) over HTTP, so the app and the command line talk to vLLM, llama.cpp's
servers, Ollama or `tui-gen serve` exactly as they talk to a local `ChatSession`.

    client.py   the HTTP side: one endpoint, its JSON calls, the SSE stream, every failure
                mapped to one RemoteError line
    backend.py  RemoteChat: SamplingParams -> request fields, chunks -> events, stats measured
                here (time to first token, tok/s)

`is_endpoint` is the one rule that decides local or remote: a model argument that starts
with http:// or https:// is an endpoint, anything else a path. The API key comes from
--api-key or TUI_GEN_API_KEY only (never another tool's variable), and never reaches a
transcript, a log line or an error message.
"""

from __future__ import annotations

import os

#: the one environment variable the key may come from
API_KEY_ENV = "TUI_GEN_API_KEY"


def is_endpoint(model: str) -> bool:
    """True when the model argument names an HTTP endpoint rather than a file or directory."""
    return model.lower().startswith(("http://", "https://"))


def api_key(flag: str | None) -> str | None:
    """The key: --api-key when given, else TUI_GEN_API_KEY, else None (no Authorization)."""
    if flag:
        return flag
    return os.environ.get(API_KEY_ENV) or None
