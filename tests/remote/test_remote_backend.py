"""RemoteChat against a fake OpenAI-compatible server on 127.0.0.1: request fields, events,
stats, cancelling, the context and token-count probes, and every failure as one line."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fake_openai import FakeOpenAI, openai_server

from tui_gen.engine.events import FinishEvent, TokenEvent
from tui_gen.engine.protocol import ChatBackend
from tui_gen.options import SamplingParams
from tui_gen.remote import API_KEY_ENV, api_key, is_endpoint
from tui_gen.remote.backend import ASSUMED_CONTEXT, REMOTE_DEFAULTS, RemoteChat
from tui_gen.remote.client import Endpoint, RemoteError, StreamCut, server_message, sse_data
from tui_gen.remote.wire import request_body

__all__ = ["openai_server"]
Server = Callable[..., FakeOpenAI]
HI = [{"role": "user", "content": "How do I make pancakes?"}]


def run(chat: RemoteChat, params: SamplingParams | None = None, **kw: Any) -> list[Any]:
    return list(chat.stream_reply(HI, params, **kw))


def test_a_reply_streams_as_token_events_then_one_finish(openai_server: Server) -> None:
    server = openai_server()
    chat = RemoteChat.connect(server.url)
    events = run(chat, system="Be brief.")
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    finishes = [e for e in events if isinstance(e, FinishEvent)]
    assert [e.text for e in tokens] == server.pieces()  # a chunk per word, in order
    assert all(e.token_id == -1 for e in tokens)  # a server gives text, not ids
    assert len(finishes) == 1 and events[-1] is finishes[0]
    fin = finishes[0]
    assert fin.reason == "eos" and fin.text == server.reply and fin.token_ids == []
    # usage when the server sends it; times measured here
    assert fin.stats.prompt_tokens == 11 and fin.stats.generated_tokens == len(tokens)
    assert fin.stats.time_to_first_token > 0
    assert chat.cached_tokens == 11 + len(tokens)
    [req] = server.chat_requests
    assert req["body"]["messages"] == [{"role": "system", "content": "Be brief."}, *HI]
    assert req["body"]["stream"] is True and req["body"]["stream_options"] == {
        "include_usage": True
    }
    assert "Authorization" not in req["headers"]  # no key given, none sent


def test_sampling_values_become_request_fields(openai_server: Server) -> None:
    server = openai_server()
    chat = RemoteChat.connect(server.url)
    p = chat.params(
        temperature=0.3,
        top_k=20,
        top_p=0.9,
        min_p=0.05,
        repetition_penalty=1.2,
        max_new_tokens=4,
        seed=7,
        stop_strings=["\n\n"],
    )
    fin = run(chat, p)[-1]
    body = server.chat_requests[0]["body"]
    expected = {
        "model": "fake-chef",
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.05,
        "repetition_penalty": 1.2,
        "repeat_penalty": 1.2,  # llama.cpp's name
        "max_tokens": 4,
        "seed": 7,
        "stop": ["\n\n"],
    }
    assert {k: body[k] for k in expected} == expected
    assert "logprobs" not in body
    assert fin.reason == "length" and fin.stats.generated_tokens == 4


def test_greedy_is_temperature_zero() -> None:
    body = request_body("m", HI, REMOTE_DEFAULTS.replace(do_sample=False, temperature=0.9))
    assert body["temperature"] == 0.0
    with pytest.raises(RemoteError, match="repetition_window"):
        request_body("m", HI, REMOTE_DEFAULTS.replace(repetition_window=64))


def test_without_usage_the_tokens_are_counted_here(openai_server: Server) -> None:
    server = openai_server(usage=False)
    chat = RemoteChat.connect(server.url)
    fin = run(chat)[-1]
    assert fin.stats.generated_tokens == len(server.pieces()) and fin.stats.prompt_tokens == 0
    # the context bar still moves: the prompt estimated, the reply counted
    assert chat.cached_tokens == chat.count_tokens(HI) + len(server.pieces())


def test_logprobs_fill_token_events_with_unknown_ids(openai_server: Server) -> None:
    server = openai_server()
    chat = RemoteChat.connect(server.url)
    tokens = [e for e in run(chat, chat.params(logprobs=2)) if isinstance(e, TokenEvent)]
    body = server.chat_requests[0]["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    lp = tokens[0].logprobs
    assert lp is not None and lp.token_id == -1 and lp.text == server.pieces()[0]
    assert lp.logprob == -0.25 and [a.text for a in lp.top] == [server.pieces()[0], "<alt>"]
    assert all(a.token_id == -1 for a in lp.top)
    assert all(t.logprobs is not None for t in tokens)


def test_cancel_closes_the_stream_and_the_server_sees_it(openai_server: Server) -> None:
    server = openai_server(mode="hang", cut_after=2)
    chat = RemoteChat.connect(server.url)
    cancel = threading.Event()
    events = []
    for ev in chat.stream_reply(HI, cancel=cancel):
        events.append(ev)
        if isinstance(ev, TokenEvent) and len(events) == 2:
            # the server now sends only keep-alive comments: the read waits, and the cancel
            # watcher must end it
            assert server.hanging.wait(10)
            cancel.set()
    fin = events[-1]
    assert isinstance(fin, FinishEvent) and fin.reason == "cancelled"
    assert fin.text == "".join(server.pieces()[:2])
    assert server.disconnected.wait(10)  # the connection closed: the server stops


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mode": "fail"}, r"the server failed \(500: CUDA out of memory\)"),
        ({"mode": "reject"}, r"rejected the request \(400: temperature must be at most 2"),
        ({"mode": "json"}, r"application/json instead of an event stream"),
    ],
)
def test_server_failures_are_one_line(openai_server: Server, options: Any, match: str) -> None:
    chat = RemoteChat.connect(openai_server(**options).url)
    with pytest.raises(RemoteError, match=match) as info:
        run(chat)
    assert "\n" not in str(info.value) and info.value.partial == ""


@pytest.mark.parametrize("mode", ["cut", "nodone"])
def test_a_cut_stream_keeps_the_partial_reply(openai_server: Server, mode: str) -> None:
    server = openai_server(mode=mode, cut_after=3)
    chat = RemoteChat.connect(server.url)
    with pytest.raises(StreamCut, match=r"cut off|ended before") as info:
        run(chat)
    assert info.value.partial == "".join(server.pieces()[:3])


def test_a_model_the_server_lacks_is_404_naming_it(openai_server: Server) -> None:
    chat = RemoteChat.connect(openai_server().url, model="llama-9000")
    with pytest.raises(RemoteError, match=r"404 for model 'llama-9000'.*--model NAME"):
        run(chat)


def test_the_key_goes_as_bearer_and_never_into_messages(openai_server: Server) -> None:
    server = openai_server(api_key="sk-right-key")
    with pytest.raises(RemoteError, match=r"refused the request \(401") as info:
        RemoteChat.connect(server.url, api_key="sk-wrong-key")
    assert "sk-wrong-key" not in str(info.value) and "sk-right" not in str(info.value)
    chat = RemoteChat.connect(server.url, api_key="sk-right-key")
    run(chat)
    assert server.chat_requests[0]["headers"]["Authorization"] == "Bearer sk-right-key"
    assert "sk-right-key" not in chat.name


def test_unreachable_and_tls_failures_are_one_line(openai_server: Server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(RemoteError, match=r"cannot reach http://127\.0\.0\.1:\d+/v1"):
        RemoteChat.connect(f"http://127.0.0.1:{port}/v1")
    plain = openai_server()
    with pytest.raises(RemoteError, match=r"TLS failed with https://.*use http://"):
        RemoteChat.connect(plain.url.replace("http://", "https://"))


def test_connect_picks_the_first_model_and_finds_the_context(openai_server: Server) -> None:
    server = openai_server(models=("first", "second"), max_model_len=8192)
    chat = RemoteChat.connect(server.url)
    assert chat.model == "first" and chat.served == ["first", "second"]
    assert chat.max_context == 8192 and "max_model_len" in chat.context_source
    assert chat.name == f"first @ {server.url}"
    path_id = openai_server(models=("/models/SmolLM2.Q4_1.gguf",))  # llama-cpp-python's ids
    assert RemoteChat.connect(path_id.url).name == f"SmolLM2.Q4_1.gguf @ {path_id.url}"
    assert RemoteChat.connect(server.url, model="second").model == "second"
    assert RemoteChat.connect(server.url, max_context=512).max_context == 512
    llama = openai_server(props_n_ctx=2048)  # llama.cpp's server: /props
    assert RemoteChat.connect(llama.url).max_context == 2048
    bare = openai_server()
    assert RemoteChat.connect(bare.url).max_context == ASSUMED_CONTEXT
    with pytest.raises(RemoteError, match="serves no models"):
        RemoteChat.connect(openai_server(models=()).url)


def test_count_tokens_asks_the_server_or_estimates(openai_server: Server) -> None:
    vllm = RemoteChat.connect(openai_server(tokenize="vllm").url)
    assert vllm.count_tokens(HI, system="Be brief.") == 5 + 2 + 3
    llama = RemoteChat.connect(openai_server(tokenize="llama.cpp").url)
    # the fake renders "<system>Be brief.\n<user>How ... pancakes?\n<assistant>" and counts
    # whitespace-separated pieces (the estimate would say 17)
    assert llama.count_tokens(HI, system="Be brief.") == 2 + 5 + 1
    guess = RemoteChat.connect(openai_server().url)
    short, long = (
        guess.count_tokens(HI),
        guess.count_tokens([{"role": "user", "content": "x" * 400}]),
    )
    assert 0 < short < long and long >= 100


def test_the_backend_is_a_chat_backend(openai_server: Server) -> None:
    chat = RemoteChat.connect(openai_server().url)
    assert isinstance(chat, ChatBackend) and chat.has_template
    assert chat.params(temperature=0.1).temperature == 0.1
    assert chat.params() == REMOTE_DEFAULTS and chat.params() is not REMOTE_DEFAULTS
    run(chat)
    chat.reset()
    assert chat.cached_tokens == 0


def test_urls_are_normalised_and_shown_without_credentials() -> None:
    ep = Endpoint("http://user:secret@example.invalid:8000")
    assert ep.url.endswith(":8000/v1") and ep.root.endswith(":8000")
    assert "secret" not in ep.display and ep.display == "http://example.invalid:8000/v1"
    assert Endpoint("https://h.invalid/openai/v1/").url == "https://h.invalid/openai/v1"
    for bad in ("http://", "ftp://host/v1", "http://:8000/v1", "http://h:port/v1"):
        with pytest.raises(RemoteError, match="not a valid endpoint URL"):
            Endpoint(bad)


def test_server_messages_and_sse_lines() -> None:
    assert server_message(b'{"error": {"message": "bad top_k"}}') == "bad top_k"
    assert server_message('{"error": "no such model"}') == "no such model"
    assert server_message('{"detail": [{"loc": ["temperature"]}]}').startswith('[{"loc"')
    assert server_message(b"<html>\x1b[31mBad Gateway</html>") == "<html>Bad Gateway</html>"
    assert server_message("x" * 1000).endswith("…")
    lines = [": ping", "event: message", 'data: {"a": 1}', "", "data:[DONE]"]
    assert list(sse_data(lines)) == ['{"a": 1}', "[DONE]"]


def test_endpoint_rule_and_key_source(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_endpoint("http://127.0.0.1:8000/v1") and is_endpoint("HTTPS://h/v1")
    assert not is_endpoint("models/cooking") and not is_endpoint("http.gguf")
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "not-ours")  # another tool's variable is never read
    assert api_key(None) is None
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert api_key(None) == "from-env" and api_key("from-flag") == "from-flag"


def test_the_oldest_exchanges_are_dropped_when_the_context_is_known(
    openai_server: Server,
) -> None:
    from tui_gen.engine.events import NoticeEvent

    server = openai_server(tokenize="vllm", max_model_len=40)
    chat = RemoteChat.connect(server.url)
    turn = "one two three four five six seven eight"  # 8 words
    history = [
        {"role": "user", "content": turn},
        {"role": "assistant", "content": turn},
        {"role": "user", "content": turn},
        {"role": "assistant", "content": turn},
        {"role": "user", "content": "last question"},
    ]
    events = list(chat.stream_reply(history, chat.params(max_new_tokens=10)))
    [notice] = [e for e in events if isinstance(e, NoticeEvent)]
    # budget 40 - 10 = 30 tokens: 8 * 4 + 2 + 3 = 37 does not fit, 8 * 2 + 2 + 3 = 21 does
    assert notice.kind == "context_trimmed" and notice.dropped == 2
    assert server.chat_requests[-1]["body"]["messages"] == history[2:]
    # an assumed context size never drops turns
    bare = RemoteChat.connect(openai_server(tokenize="vllm").url)
    assert not bare.context_known and bare.fit(history * 200, 10) == (history * 200, 0)


def test_plain_text_goes_through_completions(openai_server: Server) -> None:
    server = openai_server()
    chat = RemoteChat.connect(server.url)
    events = list(chat.stream_completion("Once upon a time", chat.params(logprobs=1)))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert "".join(t.text for t in tokens) == server.reply == events[-1].text
    [req] = [r for r in server.requests if r["path"] == "/v1/completions"]
    assert req["body"]["prompt"] == "Once upon a time" and "messages" not in req["body"]
    assert req["body"]["logprobs"] == 1  # the legacy API takes an int
    lp = tokens[0].logprobs
    assert lp is not None and lp.logprob == -0.25 and [a.text for a in lp.top] == [lp.text]
