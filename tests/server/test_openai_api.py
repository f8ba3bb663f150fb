"""The OpenAI protocol, driven with the official `openai` client (and raw httpx where the
client hides the wire format): shapes, streaming invariants, sampling fields, errors."""

from __future__ import annotations

import json
import logging
import time

import httpx
import openai
import pytest
from conftest import KEY, MODEL, start

from tui_gen.engine.chat import ChatSession
from tui_gen.engine.generator import Generator
from tui_gen.options import SamplingParams
from tui_gen.server.app import ServerState
from tui_gen.server.run import Server

HELLO = [{"role": "user", "content": "Hello there"}]


def solo_chat(gen: Generator, messages, max_tokens: int) -> str:
    """What the engine itself answers, greedy, alone."""
    p = SamplingParams(do_sample=False, max_new_tokens=max_tokens)
    return _reply(gen, messages, p)


def _reply(gen: Generator, messages, p: SamplingParams) -> str:
    from tui_gen.engine.events import FinishEvent

    for ev in ChatSession(gen).stream_reply(messages, p):
        if isinstance(ev, FinishEvent):
            return ev.text
    raise AssertionError("no FinishEvent")


def sse(server: Server, body: dict, headers: dict | None = None) -> list[str]:
    """The raw `data:` payloads of a streamed request."""
    with (
        httpx.Client(timeout=60) as c,
        c.stream("POST", f"{server.url}/chat/completions", json=body, headers=headers) as r,
    ):
        assert r.status_code == 200
        return [line[6:] for line in r.iter_lines() if line.startswith("data: ")]


def test_health_and_models(server: Server, client: openai.OpenAI) -> None:
    assert httpx.get(server.url.removesuffix("/v1") + "/health").status_code == 200
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].object == "model"


def test_health_is_503_while_loading() -> None:
    s = Server(ServerState(MODEL), "127.0.0.1", 0).start()
    try:
        base = s.url.removesuffix("/v1")
        assert httpx.get(base + "/health").status_code == 503
        r = httpx.post(f"{s.url}/chat/completions", json={"model": MODEL, "messages": HELLO})
        assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable_error"
    finally:
        s.stop()


def test_chat_completion_shape_and_greedy_text(client: openai.OpenAI, tiny_gen: Generator) -> None:
    r = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    (choice,) = r.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.content == solo_chat(tiny_gen, HELLO, 8)
    assert r.usage is not None and r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens == ChatSession(tiny_gen).count_tokens(HELLO)


def test_max_completion_tokens_and_length(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_completion_tokens=3,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"


def test_stream_invariants(server: Server) -> None:
    body = {
        "model": MODEL,
        "messages": HELLO,
        "max_tokens": 6,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 2,
    }
    payloads = sse(server, body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    *body_chunks, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    u = usage["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    for index in (0, 1):
        mine = [c["choices"][0] for c in body_chunks if c["choices"][0]["index"] == index]
        assert mine[0]["delta"]["role"] == "assistant"
        assert all("role" not in m["delta"] for m in mine[1:])
        finishes = [m["finish_reason"] for m in mine if m["finish_reason"] is not None]
        assert len(finishes) == 1 and mine[-1]["finish_reason"] in ("stop", "length")
    assert all(c["usage"] is None for c in body_chunks)


def test_stream_text_equals_the_non_streamed_reply(client: openai.OpenAI) -> None:
    kw = dict(model=MODEL, messages=HELLO, max_tokens=10, temperature=0)
    whole = client.chat.completions.create(**kw).choices[0].message.content
    parts = [
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(**kw, stream=True)
        if c.choices
    ]
    assert "".join(parts) == whole


def test_without_include_usage_there_is_no_usage_chunk(server: Server) -> None:
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 3, "stream": True}
    payloads = sse(server, body)
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)


def test_completions_plain_and_streamed(client: openai.OpenAI, tiny_gen: Generator) -> None:
    r = client.completions.create(model=MODEL, prompt="The quick", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    p = SamplingParams(do_sample=False, max_new_tokens=6)
    assert r.choices[0].text == tiny_gen.generate("The quick", params=p)
    parts = list(
        client.completions.create(
            model=MODEL, prompt="The quick", max_tokens=6, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in parts if c.choices) == r.choices[0].text
    assert sum(1 for c in parts if c.choices and c.choices[0].finish_reason) == 1
    several = client.completions.create(
        model=MODEL, prompt=["The quick", "A lazy"], max_tokens=4, temperature=0
    )
    assert [c.index for c in several.choices] == [0, 1]
    four = p.replace(max_new_tokens=4)
    assert several.choices[0].text == tiny_gen.generate("The quick", params=four)


def test_stop_strings(client: openai.OpenAI) -> None:
    kw = dict(model=MODEL, messages=HELLO, max_tokens=20, temperature=0)
    full = client.chat.completions.create(**kw, extra_body={"ignore_eos": True})
    text = full.choices[0].message.content
    cut = text[len(text) // 2 :][:3]
    assert cut.strip(), text
    r = client.chat.completions.create(**kw, stop=[cut], extra_body={"ignore_eos": True})
    assert r.choices[0].message.content == text[: text.index(cut)]
    assert r.choices[0].finish_reason == "stop"
    single = client.chat.completions.create(**kw, stop=cut, extra_body={"ignore_eos": True})
    assert single.choices[0].message.content == r.choices[0].message.content


def test_n_and_seed(client: openai.OpenAI) -> None:
    kw = dict(
        model=MODEL,
        messages=HELLO,
        max_tokens=12,
        temperature=1.5,
        top_p=1.0,
        n=3,
        seed=11,
        extra_body={"top_k": 0, "ignore_eos": True},
    )
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    texts = [c.message.content for c in a.choices]
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in b.choices]  # the seed reproduces
    assert len(set(texts)) > 1  # and the choices are not n copies
    assert a.usage.completion_tokens == 36
    other = client.chat.completions.create(**{**kw, "seed": 12})
    assert [c.message.content for c in other.choices] != texts


def test_extensions_are_accepted(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_tokens=4,
        temperature=0.7,
        top_p=0.9,
        extra_body={"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "ignore_eos": True},
    )
    assert r.usage.completion_tokens == 4


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        extra_body={"ignore_eos": True},
    )
    content = r.choices[0].logprobs.content
    assert len(content) == 4
    for item in content:
        assert item.logprob <= 0 and len(item.top_logprobs) == 3
        assert item.top_logprobs[0].token == item.token  # greedy took the most likely
        assert item.bytes == list(item.token.encode())
    plain = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
    assert plain.choices[0].logprobs is None
    c = client.completions.create(
        model=MODEL,
        prompt="The quick",
        max_tokens=3,
        temperature=0,
        logprobs=2,
        extra_body={"ignore_eos": True},
    )
    lp = c.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 3
    assert all(len(d) <= 2 for d in lp.top_logprobs) and lp.text_offset[0] == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": -1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": -5}, "max_completion_tokens"),
        ({"top_p": 0}, "top_p"),
        ({"top_k": -3}, "top_k"),
        ({"temperature": "hot"}, "temperature"),
        ({"n": 0}, "n"),
        ({"seed": -1}, "seed"),
        ({"stop": 5}, "stop"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 99}, "top_logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"99999999": 5.0}}, "logit_bias"),
        ({"logit_bias": {"seven": 5.0}}, "logit_bias"),
        ({"logit_bias": {"3": 101}}, "logit_bias"),
        ({"logit_bias": {"42": "up"}}, "logit_bias.42"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, None),
    ],
)
def test_bad_values_are_400_naming_the_field(server: Server, body: dict, param) -> None:
    r = httpx.post(
        f"{server.url}/chat/completions",
        json={"model": MODEL, "messages": HELLO, "max_tokens": 2, **body},
        timeout=60,
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["message"]
    if param is not None:
        assert err["param"] == param


def test_missing_messages_bad_json_and_unknown_route(server: Server) -> None:
    r = httpx.post(f"{server.url}/chat/completions", json={"model": MODEL})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(
        f"{server.url}/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "error" in r.json()
    r = httpx.get(f"{server.url}/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9", messages=HELLO, max_tokens=2)
    assert e.value.code == "model_not_found"


def test_a_prompt_past_the_context_is_exceed_context_size(
    client: openai.OpenAI, tiny_gen: Generator
) -> None:
    long = [{"role": "user", "content": "word " * (tiny_gen.max_context * 2)}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=long, max_tokens=2)
    body = e.value.body
    assert body["type"] == "exceed_context_size_error"
    assert body["code"] == "context_length_exceeded"


def test_max_tokens_past_the_context_stops_at_the_end(
    client: openai.OpenAI, tiny_gen: Generator
) -> None:
    prompt = "word " * 100
    while len(tiny_gen.encode(prompt)) > tiny_gen.max_context // 2:
        prompt = prompt[: len(prompt) // 2]
    r = client.completions.create(
        model=MODEL,
        prompt=prompt,
        max_tokens=10_000,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens + r.usage.completion_tokens == tiny_gen.max_context


def test_api_key(tiny_gen: Generator) -> None:
    s = start(tiny_gen, api_key=KEY)
    try:
        wrong = openai.OpenAI(base_url=s.url, api_key="wrong", max_retries=0, timeout=30)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        assert httpx.get(f"{s.url}/models").status_code == 401  # no header at all
        r = httpx.post(f"{s.url}/chat/completions", content=b"garbage")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        good = openai.OpenAI(base_url=s.url, api_key=KEY, max_retries=0, timeout=30)
        assert good.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2).choices
        assert httpx.get(s.url.removesuffix("/v1") + "/health").status_code == 200
    finally:
        s.stop()


@pytest.fixture
def server_log(caplog):
    """caplog on the server's logger itself: `tui-gen serve` run in-process elsewhere in the
    session may have left it not propagating to the root, where caplog listens."""
    log = logging.getLogger("tui_gen.server")
    caplog.set_level(logging.INFO, logger="tui_gen.server")
    saved = log.propagate
    log.propagate = False  # each record reaches caplog once, through the handler added here
    log.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        log.removeHandler(caplog.handler)
        log.propagate = saved


def test_one_log_line_per_request(client: openai.OpenAI, server_log) -> None:
    caplog = server_log
    client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=3, temperature=0, extra_body={"ignore_eos": True}
    )
    lines: list[str] = []
    for _ in range(200):  # the line is written once the response has ended: at most 2 s
        lines = [r.getMessage() for r in caplog.records if r.name == "tui_gen.server"]
        if lines:
            break
        time.sleep(0.01)
    assert len(lines) == 1
    assert lines[0].startswith("POST /v1/chat/completions 200 3 tokens ")
    assert " tok/s " in lines[0]


def test_the_model_field_may_be_left_out(server: Server) -> None:
    r = httpx.post(f"{server.url}/chat/completions", json={"messages": HELLO, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["model"] == MODEL


def test_the_log_line_never_carries_a_control_sequence(server: Server, server_log) -> None:
    caplog = server_log
    httpx.get(server.url.removesuffix("/v1") + "/%1b[2Jx")
    lines: list[str] = []
    for _ in range(200):  # at most 2 s
        lines = [r.getMessage() for r in caplog.records if r.name == "tui_gen.server"]
        if lines:
            break
        time.sleep(0.01)
    assert lines and "\x1b" not in lines[0] and lines[0].startswith("GET /")
    assert " 404 " in lines[0]


def test_logit_bias_forces_a_token(
    server: Server, client: openai.OpenAI, tiny_gen: Generator
) -> None:
    tok = tiny_gen.tokenizer.encode("a", add_special_tokens=False)[-1]
    r = client.completions.create(
        model=MODEL, prompt="The quick", max_tokens=3, temperature=0, logit_bias={str(tok): 100}
    )
    assert r.choices[0].text == tiny_gen.tokenizer.decode([tok] * 3)
