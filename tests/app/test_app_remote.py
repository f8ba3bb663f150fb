"""The app on a remote model (a fake OpenAI-compatible server on 127.0.0.1), under the Pilot: a
reply streams in, the sliders become request fields, Escape closes the stream (the server sees
it) and keeps the partial reply, a cut stream keeps what arrived, and the key never reaches a
file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_engine import isolated_dirs, ready, reply, send, wait_until
from fake_openai import FakeOpenAI, openai_server

pytestmark = pytest.mark.usefixtures("isolated_dirs")
__all__ = ["isolated_dirs", "openai_server"]
Server = Callable[..., FakeOpenAI]
KEY = "sk-app-secret-9731"


def remote_app(tmp_path: Path, url: str, **config: Any) -> Any:
    from tui_gen.app.app import AppConfig, TuiGenApp
    from tui_gen.app.settings import Settings

    return TuiGenApp(
        AppConfig(model=url, transcripts=str(tmp_path / "transcripts"), **config),
        settings=Settings.load(tmp_path / "config" / "settings.json"),
        flush_interval=0,
    )


def files_under(folder: Path) -> dict[Path, str]:
    return {p: p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}


async def test_a_reply_streams_in_and_the_transcript_names_model_and_endpoint(
    tmp_path: Path, openai_server: Server
) -> None:
    server = openai_server(api_key=KEY, max_model_len=2048)
    app = remote_app(tmp_path, server.url, api_key=KEY)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert app.load_error is None and app.engine is None  # no local engine
        assert app.status.model == f"fake-chef @ {server.url}"
        assert app.status.context_max == 2048
        await reply(pilot, "How do I make pancakes?")
        turn = app.conversation.turns[-1]
        assert turn.content == server.reply and turn.finish_reason == "eos"
        assert app.chat_view.last_reply().source == server.reply
        assert "tok/s" in app.status.speed
        body = server.chat_requests[-1]["body"]
        assert body["temperature"] == app.sampling["temperature"]
        assert body["max_tokens"] == app.sampling["max_new_tokens"]
        assert body["messages"][-1] == {"role": "user", "content": "How do I make pancakes?"}
        await pilot.press("ctrl+q")
    saved = files_under(tmp_path / "transcripts")
    assert saved, "the conversation was saved"
    text = "\n".join(saved.values())
    assert f"fake-chef @ {server.url}" in text and server.reply in text
    assert all(KEY not in t for t in files_under(tmp_path).values())  # transcripts, settings


async def test_escape_closes_the_stream_and_keeps_the_partial_reply(
    tmp_path: Path, openai_server: Server
) -> None:
    server = openai_server(mode="hang", cut_after=3)
    app = remote_app(tmp_path, server.url)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "Tell me everything about eggs.")
        partial = "".join(server.pieces()[:3])
        await wait_until(
            pilot,
            lambda: server.hanging.is_set() and app.generating and app._generation.tokens == 3,
            "three tokens on screen",
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.generating, "the stop")
        turn = app.conversation.turns[-1]
        assert turn.role == "assistant" and turn.finish_reason == "cancelled"
        assert turn.content == partial
        assert server.disconnected.wait(10)  # the connection closed: the server stops
        assert app.status.state == "stopped"


async def test_a_cut_stream_keeps_what_arrived_and_says_why(
    tmp_path: Path, openai_server: Server
) -> None:
    server = openai_server(mode="cut", cut_after=2)
    app = remote_app(tmp_path, server.url)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await reply(pilot, "Eggs?")
        turn = app.conversation.turns[-1]
        assert turn.role == "assistant" and turn.finish_reason == "error"
        assert turn.content == "".join(server.pieces()[:2])
        assert app.conversation.turns[-2].content == "Eggs?"  # the message stays sent
        notes = [n.message for n in app._notifications]
        assert any("was cut off" in n for n in notes)
        assert app.status.state == "ready"


async def test_a_rejected_value_rolls_back_with_the_servers_message(
    tmp_path: Path, openai_server: Server
) -> None:
    server = openai_server(mode="reject")
    app = remote_app(tmp_path, server.url)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "Eggs?")
        await wait_until(pilot, lambda: server.chat_requests and not app.generating, "the error")
        await pilot.pause()
        assert app.conversation.turns == []  # nothing arrived: back to before the request
        assert app.prompt.text == "Eggs?"
        notes = [n.message for n in app._notifications]
        assert any("temperature must be at most 2" in n for n in notes)


async def test_a_refused_key_is_a_load_error(tmp_path: Path, openai_server: Server) -> None:
    server = openai_server(api_key=KEY)
    app = remote_app(tmp_path, server.url, api_key="sk-wrong-1111")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert app.load_error is not None and "401" in app.load_error
        assert "sk-wrong" not in app.load_error and app.chat is None
