"""The real Gemma 3 270M Q4_K_M GGUF and llama.cpp's greedy answers on it, for opt-in tests.

Tests marked `@pytest.mark.gemma3` use these; they skip cleanly when the file is absent.

* The GGUF: $TUI_GEN_GEMMA3, else ~/.cache/tui-gen-dev/gemma-3-270m-q4_k_m.gguf
  (`../shared/tools/get-gemma3` puts it there).
* The reference: llama.cpp (llama-cpp-python) on the same file, greedy, 32 tokens per prompt,
  with its top-5 logits at every step (so a divergence can be judged a near-tie or not).
  tests/fixtures/gemma3_llamacpp.json holds it for the file of SHA-256 `FILE_SHA256`
  (`python tests/fixtures/make_gemma3_llamacpp.py` with llama-cpp-python writes it); for any
  other file it is computed once and kept in $TUI_GEN_DEV_CACHE (default ~/.cache/tui-gen-dev)
  as gemma3-llamacpp-<SHA-256 of the GGUF>.json. Without llama-cpp-python and without either,
  the comparison skips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from smollm2 import CACHE, HOME_CACHE, sha256

GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
FILE_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # get-gemma3's
FIXTURE = Path(__file__).parent / "fixtures" / "gemma3_llamacpp.json"
NEW_TOKENS = 32
TOP = 5  # llama.cpp logits kept per step

#: Gemma 3's chat template as google/gemma-3-*-it ship it (text parts); the base GGUF has none,
#: so chat prompts are rendered with this one.
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate '
    'user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)

RAW_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n",
    "The three primary colors are",
    "Water boils at a temperature of",
    "To make a cup of tea, first",
]
CHATS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "What is the capital of Italy?"}],
    [{"role": "user", "content": "Give me a simple recipe for tomato soup."}],
    [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name three fruits that are red."},
    ],
    [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Soft rain on the roof"},
        {"role": "user", "content": "Now one about snow."},
    ],
]


def gguf_path() -> Path | None:
    """The Gemma 3 GGUF if it is on this machine, else None."""
    env = os.environ.get("TUI_GEN_GEMMA3")
    for candidate in (Path(env).expanduser() if env else None, HOME_CACHE / GGUF_NAME):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def require_gguf() -> Path:
    """The Gemma 3 GGUF, or skip the calling test."""
    path = gguf_path()
    if path is None:
        pytest.skip(
            f"Gemma 3 GGUF not found (set TUI_GEN_GEMMA3 or put {GGUF_NAME} in {HOME_CACHE})"
        )
    return path


def llama_cpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def prompt_cases(gen: Any) -> list[dict[str, Any]]:
    """Every prompt as token ids, by our tokenizer and our renderer of `CHAT_TEMPLATE`."""
    from tui_gen.engine.chat import render_messages

    tok = gen.tokenizer
    cases: list[dict[str, Any]] = [
        {"kind": "raw", "prompt": p, "input_ids": gen.encode(p)} for p in RAW_PROMPTS
    ]
    for msgs in CHATS:
        text = render_messages(CHAT_TEMPLATE, msgs, bos_token=tok.bos_token)
        cases.append({"kind": "chat", "messages": msgs, "input_ids": gen.encode(text, False)})
    return cases


def llama_cpp_greedy(gguf: Path, ids: list[int], n: int = NEW_TOKENS, llm: Any = None) -> dict:
    """llama.cpp's greedy ids after `ids`, with its top-`TOP` (id, logit) at every step."""
    import numpy as np

    if llm is None:
        llm = open_llama_cpp(gguf)
    llm.reset()
    llm.eval(ids)
    out: list[int] = []
    tops: list[list[tuple[int, float]]] = []
    for _ in range(n):
        # the last evaluated position's logits (llama-cpp-python keeps no `scores` row for it
        # unless logits_all, which costs n_ctx x 262k floats)
        last = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        logits = last.astype(np.float64)
        order = np.argsort(-logits, kind="stable")[:TOP]
        tops.append([(int(i), round(float(logits[i]), 4)) for i in order])
        out.append(int(order[0]))
        llm.eval([out[-1]])
    return {"greedy_ids": out, "top": tops}


def open_llama_cpp(gguf: Path) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(gguf), n_ctx=512, n_threads=2, verbose=False, seed=0)


def compute_reference(gguf: Path, gen: Any) -> dict[str, Any]:
    import llama_cpp

    llm = open_llama_cpp(gguf)
    cases = prompt_cases(gen)
    for case in cases:
        case.update(llama_cpp_greedy(gguf, case["input_ids"], llm=llm))
        if case["kind"] == "raw":  # does llama.cpp's own tokenizer agree with ours?
            theirs = llm.tokenize(case["prompt"].encode(), add_bos=True, special=True)
            case["llama_cpp_tokenizes_alike"] = theirs == case["input_ids"]
    return {
        "model": GGUF_NAME,
        "sha256": sha256(gguf),
        "llama_cpp_python": llama_cpp.__version__,
        "n_ctx": 512,
        "threads": 2,
        "new_tokens": NEW_TOKENS,
        "note": "greedy (argmax of llama.cpp's logits); top = its top-5 (id, logit) per step",
        "cases": cases,
    }


def reference(gguf: Path, gen: Any) -> dict[str, Any]:
    """llama.cpp's answers for this file: the committed fixture, the cache, or computed now."""
    digest = sha256(gguf)
    if FIXTURE.is_file():
        data = json.loads(FIXTURE.read_text())
        if data["sha256"] == digest:
            return data
    cached = CACHE / f"gemma3-llamacpp-{digest}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    if not llama_cpp_installed():
        pytest.skip(f"no llama.cpp reference for {gguf.name} and llama-cpp-python is not installed")
    data = compute_reference(gguf, gen)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1))
    partial.rename(cached)
    return data
