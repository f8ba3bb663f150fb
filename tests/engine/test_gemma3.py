"""The real Gemma 3 270M (base) Q4_K_M GGUF, opt-in (`-m gemma3`): it loads, reads its layout and
replies greedily as transformers does from the same file.

The file: $TUI_GEN_GEMMA3, else ~/.cache/tui-gen-dev/gemma-3-270m-q4_k_m.gguf
(`../shared/tools/get-gemma3` puts it there). Skipped when absent.
"""

from __future__ import annotations

import pytest
import torch
from gemma3 import require_gguf

from tui_gen.engine.generator import Generator

pytestmark = pytest.mark.gemma3

PROMPT = "The capital of France is"
PROMPT_IDS = [2, 818, 5279, 529, 7001, 563]  # <bos> + the prompt, as transformers encodes it
#: transformers 5.24 `from_pretrained(gguf_file=...)` on the same file, float32, greedy, 20 tokens
#: (it takes ~2 minutes to load, so its answer is written down here)
EXPECTED = [506, 5279, 529, 506, 2891, 529, 7001, 236761, 1030, 563, 506, 7488, 3207, 528, 7001,
            532, 506, 1855, 7488, 3207]  # fmt: skip


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator.load(require_gguf(), device="cpu", dtype="float32")


def test_layout_and_tokenizer(gen: Generator) -> None:
    cfg = gen.config
    assert (cfg.arch, cfg.model_type, cfg.vocab_size, cfg.num_layers) == (
        "gemma", "gemma3_text", 262144, 18
    )  # fmt: skip
    windows = [cfg.layer_window(i) for i in range(cfg.num_layers)]
    assert windows == [None if (i + 1) % 6 == 0 else 512 for i in range(18)]
    assert (cfg.rope_theta, cfg.rope_local_theta, cfg.query_pre_attn_scalar) == (1e6, 1e4, 256)
    assert gen.encode(PROMPT) == PROMPT_IDS
    assert gen.tokenizer.token_to_id("<end_of_turn>") in gen.eos_token_ids
    assert gen.decode_backend == "native"


def test_greedy_reply_matches_transformers(gen: Generator) -> None:
    out = gen.generate_result(PROMPT, do_sample=False, max_new_tokens=20)
    assert out.token_ids == EXPECTED
    assert "France" in out.text


def test_native_step_matches_torch_on_the_real_file(gen: Generator) -> None:
    decoder = gen._native_decoder()  # built on first use: this test may run first (xdist)
    assert decoder is not None
    ids = PROMPT_IDS + EXPECTED[:10]
    cache = gen._ensure_cache()
    with torch.inference_mode():
        full = gen.model(torch.tensor([ids]))[0]
        gen.model(torch.tensor([ids[:6]]), start=0, cache=cache)
        steps = [decoder.step(torch.tensor([[t]]), 6 + i, cache)[0, -1].clone()
                 for i, t in enumerate(ids[6:])]  # fmt: skip
    got, ref = torch.stack(steps), full[6:]
    assert ((got - ref).abs().max() / ref.abs().max()).item() < 1e-4
    assert torch.equal(got.argmax(-1), ref.argmax(-1))


def test_chat_template_renders_like_transformers(gen: Generator) -> None:
    if not gen.chat_template:
        pytest.skip("this GGUF (the base model) carries no chat template")
    from transformers import AutoTokenizer

    from tui_gen.engine.chat import ChatSession

    path = require_gguf()
    ref = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name a fruit."}]  # fmt: skip
    assert ChatSession(gen).render(msgs) == ref.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True
    )


def test_info_shows_family_windows_rope_and_quant_types_per_group() -> None:
    from tui_gen.cli.info import describe, format_text

    d = describe(str(require_gguf()), device="cpu", dtype="float32")
    assert (d["format"], d["family"], d["architecture"]) == ("gguf:Q4_K_M", "gemma", "gemma3_text")
    assert d["sliding_window"] == "15 of 18 layers: window 512, others global"
    assert d["global_layers"] == [5, 11, 17]
    assert d["rope"] == {"theta": 1e6, "sliding_theta": 1e4, "scaling": None}
    assert d["soft_caps"] == {"attention": None, "logits": None}  # Gemma 3 has none
    groups = {g["group"]: g["types"] for g in d["tensor_groups"]}
    assert groups["token_embd"] == {"Q8_0": 1}
    assert groups["ffn_down"] == {"Q6_K": 9, "Q4_K": 9}  # a Q4_K_M file mixes types per layer
    text = format_text(d).splitlines()
    assert "sliding window  15 of 18 layers: window 512, others global (layers 5, 11, 17)" in text
    assert "rope            theta 1,000,000 (global layers), 10,000 (sliding layers)" in text
    assert "  ffn_down  Q6_K x9, Q4_K x9" in text
