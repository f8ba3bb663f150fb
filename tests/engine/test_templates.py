"""Adversarial chat templates (issue #19): the sandbox already stops code from running; these
are the templates that hung the engine, took gigabytes or raised tracebacks. Each now ends in
one TemplateError line, quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tui_gen.engine import chat
from tui_gen.engine.chat import ChatSession, TemplateError, render_messages

MESSAGES = [{"role": "user", "content": "hi"}]

#: name -> template; every one of them hung, used > 4 GB or raised a non-TemplateError before
BOMBS = {
    "nested range": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
    "{% endfor %}",
    "nested range writing": "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}"
    "{% endfor %}",
    "power tower": "{{ 2 ** (10 ** 10) }}",
    "repeated power": "{% set ns = namespace(x=9) %}{% for i in range(12) %}"
    "{% set ns.x = ns.x ** 9 %}{% endfor %}{{ ns.x > 1 }}",
    "string times": "{{ 'x' * 10**10 }}",
    "list times": "{{ ([1] * 10**9)|length }}",
    "doubling with ~": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling with +": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "100 MB of output": "{% for i in range(99999) %}{{ 'y' * 1000 }}{% endfor %}",
    "division by zero": "{{ 1 // 0 }}",
    "float overflow": "{{ 10.0 ** 400 }}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "huge center": "{{ 'x'|center(10**10) }}",
    "huge expandtabs": "{{ '\t'.expandtabs(10**9) }}",
    "printf width": "{{ '%10000000000d' % 1 }}",
    "format filter width": "{{ '%10000000000d'|format(1) }}",
    "str.format width": "{{ '{:>10000000000}'.format(1) }}",
    "join of big parts": "{{ (['x' * 1000000] * 1000)|join }}",
    "str.join of big parts": "{{ ''.join(['x' * 1000000] * 1000) }}",
    "integer squaring": "{% set ns = namespace(x=3) %}{% for i in range(40) %}"
    "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 1 }}",
    "replace squaring": "{% set ns = namespace(s='xx') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s.replace('x', ns.s) %}{% endfor %}{{ ns.s|length }}",
    "replace filter squaring": "{% set ns = namespace(s='xx') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s|replace('x', ns.s) %}{% endfor %}{{ ns.s|length }}",
}


@pytest.fixture(autouse=True)
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "RENDER_SECONDS", 0.3, raising=False)


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_template_bomb_is_one_template_error_quickly(name: str) -> None:
    with pytest.raises(TemplateError, match="the model's chat template") as e:
        render_messages(BOMBS[name], MESSAGES)
    if name.startswith("nested range"):  # only the deadline stops these: it must have fired
        assert "took more than 0.3 s" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_limits_leave_real_templates_alone() -> None:
    template = (
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}"
        "{% if loop.last and m.role == 'user' %}{{ ' ' * 4 }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}{{ (2 ** 64) % 7 }}"
        "{{ '%05d' % 42 }}{{ ', '.join(['a', 'b']) }}{{ range(3)|list|length }}"
    )
    out = render_messages(template, MESSAGES * 3, bos_token="<s>")
    assert out == "<s>" + "<|user|>hi" * 2 + "<|user|>hi    <|assistant|>2" + "00042a, b3"


def test_a_template_that_raises_is_a_template_error_in_the_api(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_gen.engine.generator import Generator

    template = ["{{ 1 // 0 }}"]
    monkeypatch.setattr(Generator, "chat_template", property(lambda self: template[0]))
    session = ChatSession(Generator.load(tiny_llama, device="cpu"))
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        list(session.send("hi"))
    template[0] = BOMBS["nested range"]
    with pytest.raises(TemplateError, match="took more than"):
        list(session.send("hi"))


def test_the_command_line_prints_one_line_for_a_template_bomb(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import shutil

    from tui_gen.cli import main

    model = tmp_path / "m"
    shutil.copytree(tiny_llama, model)
    cfg_path = model / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = BOMBS["string times"]
    cfg_path.write_text(json.dumps(cfg))
    assert main([str(model), "--prompt", "hi", "--chat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chat template was stopped" in err


def test_the_deadline_never_fires_after_a_render(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "RENDER_SECONDS", 0.05, raising=False)
    for _ in range(3):
        with pytest.raises(TemplateError, match="took more than"):
            render_messages(BOMBS["nested range"], MESSAGES)
        assert render_messages("{{ messages[0].content }}", MESSAGES) == "hi"
        time.sleep(0.1)  # a watchdog left running would raise here, outside any render
    assert render_messages("{{ messages[0].content }}", MESSAGES) == "hi"
