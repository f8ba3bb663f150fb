"""Qwen3, Gemma 3 and Gemma 2 GGUF files (written as llama.cpp's converter writes them) open and
match transformers on the same weights: F32 exactly, Q8_0 against the dequantized weights."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from tiny_models import make_model

from tui_gen.engine.generator import Generator
from tui_gen.engine.loading.gguf_reader import open_gguf
from tui_gen.errors import UnsupportedModelError

_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",  # llama/qwen3
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GEMMA_LAYER = _LAYER | {
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}
_TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight"}  # fmt: skip


def _hf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager"
    ).eval()


def write_gguf(path: Path, model_dir: Path, arch: str, qtype: str = "F32"):
    """convert_hf_to_gguf.py's reading of a tiny model (Gemma norms stored as 1 + w); returns
    the transformers model holding exactly the weights the file holds."""
    model = _hf(model_dir)
    c = model.config
    gemma = arch in ("gemma2", "gemma3")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    if arch == "gemma3":
        w.add_rope_freq_base(c.rope_parameters["full_attention"]["rope_theta"])
    else:
        w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    if arch == "qwen3":
        w.add_rope_dimension_count(c.head_dim)
    if gemma:
        w.add_sliding_window(c.sliding_window)
    if arch == "gemma2":
        w.add_attn_logit_softcapping(c.attn_logit_softcapping)
        w.add_final_logit_softcapping(c.final_logit_softcapping)
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    tokens = [t for t, _ in vocab]
    for t, i in added.items():
        if i >= len(tokens):
            tokens.append(t)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in added else 1 for t in tokens])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]])
    w.add_bos_token_id(c.bos_token_id)
    w.add_eos_token_id(c.eos_token_id)
    state = model.state_dict()
    if c.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    layer_names = _GEMMA_LAYER if gemma else _LAYER
    for name, t in state.items():
        arr = t.detach().float().numpy()
        if name in _TOP:
            gname = _TOP[name]
        else:
            _, _, i, rest = name.split(".", 3)
            gname = f"blk.{i}.{layer_names[rest]}"
        if gemma and name.endswith("norm.weight"):
            arr = arr + 1.0
        if arr.ndim == 1 or qtype == "F32":
            w.add_tensor(gname, arr.astype(np.float32))
            continue
        data = gguf.quants.quantize(arr.astype(np.float32), Q[qtype])
        w.add_tensor(gname, data, raw_dtype=Q[qtype])
        with torch.no_grad():  # the reference sees the weights the file holds
            t.copy_(torch.from_numpy(gguf.quants.dequantize(data, Q[qtype]).reshape(arr.shape)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


@pytest.fixture(scope="module")
def dirs(tiny_root: Path) -> dict[str, Path]:
    return {
        "qwen3": make_model(tiny_root / "g-qwen3", "qwen3", seed=21, head_dim=32),
        "gemma3": make_model(
            tiny_root / "g-gemma3",
            "gemma3_text",
            seed=22,
            num_hidden_layers=6,
            sliding_window=6,
            rope_local_base_freq=10000.0,
            rope_theta=1_000_000.0,
        ),  # fmt: skip
        "gemma2": make_model(
            tiny_root / "g-gemma2",
            "gemma2",
            seed=23,
            num_hidden_layers=2,
            sliding_window=6,
            attn_logit_softcapping=2.0,
            final_logit_softcapping=3.0,
        ),  # fmt: skip
    }


IDS = list(range(5, 30))  # past every window


@pytest.mark.parametrize("qtype", ["F32", "Q8_0"])
@pytest.mark.parametrize("arch", ["qwen3", "gemma3", "gemma2"])
def test_gguf_matches_transformers(tmp_path: Path, dirs: dict[str, Path], arch: str, qtype: str):
    path = tmp_path / f"{arch}-{qtype}.gguf"
    ref = write_gguf(path, dirs[arch], arch, qtype)
    ours = Generator.load(path, device="cpu", dtype="float32")
    assert ours.config.arch == ("qwen3" if arch == "qwen3" else "gemma")
    ids = torch.tensor([IDS])
    with torch.no_grad():
        expected = ref(ids).logits
        got = ours.model(ids)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    out = ours.generate_result(IDS[:8], do_sample=False, max_new_tokens=20)
    with torch.no_grad():
        hf = ref.generate(torch.tensor([IDS[:8]]), attention_mask=torch.ones(1, 8, dtype=torch.long),
                          do_sample=False, max_new_tokens=20, eos_token_id=None, pad_token_id=0)  # fmt: skip
    expected_ids = hf[0, 8:].tolist()
    for i, t in enumerate(expected_ids):
        if t in ours.eos_token_ids:
            expected_ids = expected_ids[:i]
            break
    assert out.token_ids == expected_ids


def test_unknown_gguf_architecture_names_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    w = gguf.GGUFWriter(str(path), "falcon")
    w.add_block_count(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UnsupportedModelError) as e:
        open_gguf(path)
    msg = str(e.value)
    assert "\n" not in msg and "'falcon'" in msg
    assert "gemma2, gemma3, gpt2, granite, llama, olmo2, phi3, qwen2, qwen3, smollm3" in msg
