"""A `tui-gen serve` on the tiny llama (it has a chat template), on a free loopback port in a
thread of this process; every server a test starts is stopped by its fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from tui_gen.engine.generator import Generator  # noqa: E402
from tui_gen.server.app import ServerState  # noqa: E402
from tui_gen.server.run import Server  # noqa: E402

MODEL = "tiny"
KEY = "sk-test-key"


@pytest.fixture(scope="session")
def tiny_gen(tiny_llama: Path) -> Generator:
    return Generator.load(tiny_llama, device="cpu", max_context=256)


def start(gen: Generator, **kw) -> Server:
    state = ServerState(MODEL, **kw)
    state.ready(gen)
    return Server(state, "127.0.0.1", 0).start()


@pytest.fixture(scope="module")
def server(tiny_gen: Generator) -> Iterator[Server]:
    s = start(tiny_gen)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(server: Server):
    c = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)
    try:
        yield c
    finally:
        c.close()
