"""Opt-in (`-m gemma3`): the real Gemma 3 270M Q4_K_M GGUF, our greedy decode against llama.cpp's.

The two engines do not compute the same numbers: ours dequantizes the GGUF to float32 and
multiplies in float32, llama.cpp multiplies quantized blocks by activations it quantizes to 8
bits. Their logits differ by a few tenths (on a scale of ~20), so where the two best tokens are
that close the greedy choice may flip, and from there the texts part. What must hold, and is
asserted: our greedy reply equals llama.cpp's for all 32 tokens on most prompts, and wherever
ours picks another token than llama.cpp's (free-running, or fed llama.cpp's own tokens) both
engines score the two tokens within `NEAR_TIE` of each other: a near-tie, never a wrong model.
The reference (llama.cpp's ids and top-5 logits per step) comes from tests/gemma3.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from gemma3 import (
    CHAT_TEMPLATE,
    CHATS,
    NEW_TOKENS,
    llama_cpp_greedy,
    llama_cpp_installed,
    prompt_cases,
    reference,
    require_gguf,
)

from tui_gen.engine.chat import render_messages
from tui_gen.engine.generator import Generator

pytestmark = pytest.mark.gemma3
NEAR_TIE = 1.0  # logits; the two engines' logits differ by up to ~0.5 on this file


@pytest.fixture(scope="module")
def gguf() -> Path:
    return require_gguf()


@pytest.fixture(scope="module")
def gen(gguf: Path) -> Generator:
    return Generator.load(gguf, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def ref(gguf: Path, gen: Generator) -> dict[str, Any]:
    return reference(gguf, gen)


def greedy(gen: Generator, ids: list[int], n: int) -> list[int]:
    gen.reset()
    saved = gen.tokenizer.eos_token_ids
    gen.tokenizer.eos_token_ids = []  # 32 tokens, as llama.cpp's reference (eos not special)
    try:
        return list(gen.generate_result(ids, do_sample=False, max_new_tokens=n).token_ids)
    finally:
        gen.tokenizer.eos_token_ids = saved


def first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))


def our_logits(gen: Generator, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return gen.model(torch.tensor([ids]))[0].double()


def near_tie(ours: torch.Tensor, top: list[list[Any]], mine: int, theirs: int) -> str | None:
    """Why the step where we chose `mine` and llama.cpp `theirs` is not a near-tie, or None."""
    margin = float(ours[mine] - ours[theirs])
    if margin > NEAR_TIE:
        return f"we prefer {mine} over llama.cpp's {theirs} by {margin:.3f}"
    scores = {int(i): s for i, s in top}
    if mine not in scores:
        return f"our {mine} is not in llama.cpp's top {len(top)} ({sorted(scores)})"
    if scores[theirs] - scores[mine] > NEAR_TIE:
        return f"llama.cpp prefers {theirs} over our {mine} by {scores[theirs] - scores[mine]:.3f}"
    return None


def test_the_prompts_are_the_reference_prompts(gen: Generator, ref: dict[str, Any]) -> None:
    assert [c["input_ids"] for c in prompt_cases(gen)] == [c["input_ids"] for c in ref["cases"]]
    # llama.cpp's own tokenizer reads the raw prompts as ours does
    assert all(c["llama_cpp_tokenizes_alike"] for c in ref["cases"] if c["kind"] == "raw")


def test_greedy_replies_match_llama_cpp_up_to_near_ties(
    gen: Generator, ref: dict[str, Any]
) -> None:
    cases = ref["cases"]
    agree, problems = 0, []
    for case in cases:
        ids, theirs = case["input_ids"], case["greedy_ids"]
        mine = greedy(gen, ids, NEW_TOKENS)
        k = first_difference(mine, theirs)
        if k == NEW_TOKENS:
            agree += 1
            continue
        # the same prefix so far: our logits at step k, on exactly what llama.cpp saw
        why = near_tie(our_logits(gen, ids + theirs[:k])[-1], case["top"][k], mine[k], theirs[k])
        if why:
            problems.append(f"{case['kind']} prompt {ids[:8]}...: token {k}: {why}")
    assert not problems
    assert agree >= len(cases) // 2, f"only {agree} of {len(cases)} replies equal for 32 tokens"


def test_fed_llama_cpp_tokens_we_pick_its_token_or_a_near_tie(
    gen: Generator, ref: dict[str, Any]
) -> None:
    """Teacher-forced over llama.cpp's whole reply: every one of the 32 steps is checked, not
    only those before the first divergence."""
    steps, same, problems = 0, 0, []
    for case in ref["cases"]:
        ids, theirs = case["input_ids"], case["greedy_ids"]
        logits = our_logits(gen, ids + theirs[:-1])[len(ids) - 1 :]
        for k, row in enumerate(logits):
            steps += 1
            mine = int(row.argmax())
            if mine == theirs[k]:
                same += 1
            elif why := near_tie(row, case["top"][k], mine, theirs[k]):
                problems.append(f"{case['kind']} prompt {ids[:8]}...: token {k}: {why}")
    assert not problems
    assert same >= 0.95 * steps, f"{same} of {steps} steps"


def test_chat_prompts_render_like_transformers(gen: Generator) -> None:
    """Ours (engine/chat.py's sandbox) and transformers' own renderer of the same template, for
    the same messages (system + user + assistant + user included)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    tok = gen.tokenizer
    rendered = {}
    for i, msgs in enumerate(CHATS):
        for add in (True, False):
            theirs, _ = render_jinja_template(
                conversations=[msgs],
                chat_template=CHAT_TEMPLATE,
                add_generation_prompt=add,
                bos_token=tok.bos_token,
                eos_token=tok.eos_token,
            )
            ours = render_messages(CHAT_TEMPLATE, msgs, add_generation_prompt=add,
                                   bos_token=tok.bos_token, eos_token=tok.eos_token)  # fmt: skip
            assert ours == theirs[0]
            rendered[i, add] = ours
    system_first = rendered[2, True]  # system + user + assistant + user
    assert system_first.startswith("<bos><start_of_turn>user\nYou are a concise assistant.\n\nHi!")
    assert system_first.endswith("<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.skipif(not llama_cpp_installed(), reason="llama-cpp-python is not installed")
def test_the_reference_is_what_llama_cpp_says_now(gguf: Path, ref: dict[str, Any]) -> None:
    """With llama-cpp-python here, the stored reference is checked against a fresh run."""
    for case in (ref["cases"][0], ref["cases"][-1]):
        now = llama_cpp_greedy(gguf, case["input_ids"], 8)
        assert now["greedy_ids"] == case["greedy_ids"][:8]
