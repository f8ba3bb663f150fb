"""Chat sessions: template rendering (sandboxed), plain format, KV reuse, trimming."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_models import CHAT_TEMPLATE

from tui_gen import Generator
from tui_gen.engine.chat import ChatSession, TemplateError, render_messages, render_plain
from tui_gen.engine.events import FinishEvent, NoticeEvent
from tui_gen.errors import TuiGenError

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Pasta?\nWith 日本 🍕"},
    ],
]

# A template in the style of real ones: system handling, loops, raise_exception, tojson.
TEMPLATE_REALISTIC = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "<<SYS>>{{ messages[0]['content'] }}<</SYS>>\n{% else %}{% set loop_messages = messages %}"
    "{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}[INST] {{ message['content'] | trim }} [/INST]"
    "{% else %} {{ message['content'] | tojson }}{{ eos_token }}{% endif %}{% endfor %}"
)


@pytest.mark.parametrize("template", [CHAT_TEMPLATE, TEMPLATE_REALISTIC])
@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_render_matches_transformers(template, messages, add_generation_prompt) -> None:
    from transformers.utils.chat_template_utils import render_jinja_template

    expected, _ = render_jinja_template(
        conversations=[messages],
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        bos_token="<s>",
        eos_token="</s>",
    )
    got = render_messages(
        template,
        messages,
        add_generation_prompt=add_generation_prompt,
        bos_token="<s>",
        eos_token="</s>",
    )
    assert got == expected[0]


def test_template_raise_exception_and_sandbox() -> None:
    bad_order = [{"role": "assistant", "content": "x"}]
    with pytest.raises(TemplateError, match="alternate"):
        render_messages(TEMPLATE_REALISTIC, bad_order)
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(TemplateError):
        render_messages(escape, [{"role": "user", "content": "x"}])
    mutate = "{% set _ = messages.append({'role': 'user'}) %}{{ messages | length }}"
    with pytest.raises(TemplateError):
        render_messages(mutate, [{"role": "user", "content": "x"}])
    with pytest.raises(TemplateError, match="not valid Jinja"):
        render_messages("{% for %}", [])


def test_plain_format_is_documented_format() -> None:
    text = render_plain(CONVERSATIONS[1])
    assert (
        text == "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: Pasta?\nWith 日本 🍕\nAssistant:"
    )


@pytest.fixture
def chat_gen(tiny_llama: Path) -> Generator:
    return Generator.load(tiny_llama, device="cpu")


def _finish(events) -> FinishEvent:
    events = list(events)
    assert isinstance(events[-1], FinishEvent)
    return events[-1]


def test_send_stores_turns_and_reuses_cache(chat_gen: Generator) -> None:
    chat = ChatSession(chat_gen, system="Be brief.")
    f1 = _finish(chat.send("Hello", max_new_tokens=6, seed=0))
    assert [m["role"] for m in chat.messages] == ["user", "assistant"]
    assert chat.messages[1]["content"] == f1.text
    f2 = _finish(chat.send("More", max_new_tokens=6, seed=0))
    # the second turn only prefilled what the cache did not hold
    assert f2.stats.prefill_tokens < f2.stats.prompt_tokens
    assert len(chat.messages) == 4
    # the rendered prompt is the template's text
    assert chat.render().startswith("<|system|>Be brief.<|end|><|user|>Hello<|end|>")


def test_regenerate_edit_and_reset(chat_gen: Generator) -> None:
    chat = ChatSession(chat_gen)
    with pytest.raises(TuiGenError, match="no reply"):
        list(chat.regenerate())
    _finish(chat.send("Hello", max_new_tokens=5, seed=1, temperature=1.0))
    first = chat.messages[-1]["content"]
    _finish(chat.regenerate(max_new_tokens=5, seed=2, temperature=1.0))
    assert len(chat.messages) == 2 and chat.messages[-1]["content"] != first
    assert chat.pop_last_exchange() == "Hello" and chat.messages == []
    _finish(chat.send("Again", max_new_tokens=2, seed=0))
    chat.reset()
    assert chat.messages == [] and chat_gen.cached_tokens == 0


def test_cancelled_reply_is_kept(chat_gen: Generator) -> None:
    import threading

    cancel = threading.Event()
    chat = ChatSession(chat_gen)
    events = []
    for ev in chat.send("Hello", cancel=cancel, max_new_tokens=100, seed=0, temperature=1.0):
        events.append(ev)
        if len(events) == 2:
            cancel.set()
    assert events[-1].reason == "cancelled"
    assert chat.messages[-1] == {"role": "assistant", "content": events[-1].text}


def test_trimming_drops_oldest_turns_keeps_system(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", max_context=64)
    chat = ChatSession(gen, system="Sys")
    notices = []
    for i in range(12):
        for ev in chat.send(f"question number {i} about pasta", max_new_tokens=8, seed=i):
            if isinstance(ev, NoticeEvent):
                notices.append(ev)
    assert notices and notices[0].kind == "context_trimmed"
    assert chat.messages[-2]["content"] == "question number 11 about pasta"
    assert chat.messages[0]["role"] == "user"  # an exchange is dropped whole
    assert chat.render().startswith("<|system|>Sys<|end|>")
    ids, _ = chat.prompt_ids(8)
    assert len(ids) <= 64


def test_huge_single_message_never_raises(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", max_context=48)
    chat = ChatSession(gen)
    fin = _finish(chat.send("pasta " * 200, max_new_tokens=8, seed=0))
    assert fin.stats.prompt_truncated
    assert fin.reason in ("length", "eos")


def test_plain_format_model_stops_at_next_user_turn(tiny_llama: Path, tmp_path: Path) -> None:
    d = tmp_path / "plain"
    shutil.copytree(tiny_llama, d)
    cfg = (d / "tokenizer_config.json").read_text().replace('"chat_template"', '"unused"')
    (d / "tokenizer_config.json").write_text(cfg)
    gen = Generator.load(d)
    chat = ChatSession(gen, system="S")
    assert not chat.has_template
    p = chat._params(None, {})
    assert "\nUser:" in p.stop_strings
    _finish(chat.send("Hi", max_new_tokens=4, seed=0))
    assert chat.render(add_generation_prompt=False).startswith("S\n\nUser: Hi\nAssistant:")


def test_stream_reply_uses_the_callers_messages_and_reuses_the_cache(chat_gen: Generator) -> None:
    from types import MappingProxyType

    chat = ChatSession(chat_gen)
    first = (MappingProxyType({"role": "user", "content": "Hello"}),)
    f1 = _finish(chat.stream_reply(first, chat.params(max_new_tokens=6, seed=0), system="Sys"))
    assert chat.messages == [] and chat.system is None  # the caller owns the conversation
    second = (
        *first,
        MappingProxyType({"role": "assistant", "content": f1.text}),
        MappingProxyType({"role": "user", "content": "More"}),
    )
    f2 = _finish(chat.stream_reply(second, chat.params(max_new_tokens=6, seed=0), system="Sys"))
    assert f2.stats.prefill_tokens < f2.stats.prompt_tokens  # only the new tokens prefilled
    assert chat.count_tokens(second, "Sys") == f2.stats.prompt_tokens
