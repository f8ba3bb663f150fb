"""GGUF files of OLMo-2, Granite, SmolLM3, Phi-3 and GPT-2, written the way llama.cpp's
converter writes them, open and match transformers on the same (tiny random) weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
from tiny_models import make_model

from tui_gen.engine.generator import Generator
from tui_gen.engine.loading.gguf_reader import open_gguf

ARCH = {"olmo2": gguf.MODEL_ARCH.OLMO2, "granite": gguf.MODEL_ARCH.GRANITE,
        "smollm3": gguf.MODEL_ARCH.SMOLLM3, "phi3": gguf.MODEL_ARCH.PHI3,
        "gpt2": gguf.MODEL_ARCH.GPT2}  # fmt: skip
#: llama.cpp's converters that subclass LlamaModel permute q/k rows
PERMUTED = {"granite", "smollm3"}
CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
LONGROPE = {"rope_type": "longrope", "short_factor": [1.0, 1.1, 1.3, 1.7, 1.9, 2.0, 2.1, 2.3],
            "long_factor": [1.0, 2.0, 4.0, 9.0, 11.0, 12.0, 14.0, 16.0],
            "original_max_position_embeddings": 32, "rope_theta": 10000.0}  # fmt: skip


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _q8_roundtrip(arr: np.ndarray) -> np.ndarray:
    q = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    return gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0).reshape(arr.shape)


def to_gguf_layout(name: str, t: torch.Tensor, fam: str, c: Any) -> np.ndarray:
    arr = t.detach().float().numpy()
    if fam in PERMUTED and name.endswith("q_proj.weight"):
        arr = permute(arr, c.num_attention_heads)
    elif fam in PERMUTED and name.endswith("k_proj.weight"):
        arr = permute(arr, c.num_key_value_heads)
    elif fam == "gpt2" and name.endswith(CONV1D):
        arr = np.ascontiguousarray(arr.T)
    return arr


def quantize_hf_weights(hf: Any, fam: str) -> None:
    """Replace every 2-D weight by its Q8_0 round trip (in the file's layout, so the GGUF's
    dequantized tensors are exactly these)."""
    c = hf.config
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.dim() != 2:
                continue
            arr = _q8_roundtrip(to_gguf_layout(name, p, fam, c))
            if fam == "gpt2" and name.endswith(CONV1D):
                arr = arr.T
            elif fam in PERMUTED and name.endswith(("q_proj.weight", "k_proj.weight")):
                heads = c.num_attention_heads if "q_proj" in name else c.num_key_value_heads
                arr = arr.reshape(heads, arr.shape[0] // heads // 2, 2, -1).swapaxes(1, 2)
                arr = arr.reshape(p.shape)
            p.copy_(torch.from_numpy(np.ascontiguousarray(arr)))


def write_gguf(path: Path, model_dir: Path, hf: Any, fam: str, qtype: str = "F32") -> Path:
    """hf (a transformers model saved in model_dir) as llama.cpp's converter writes it."""
    c = hf.config
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[ARCH[fam]])
    w.add_name("tiny test model")
    if fam == "gpt2":
        w.add_block_count(c.n_layer)
        w.add_context_length(c.n_positions)
        w.add_embedding_length(c.n_embd)
        w.add_feed_forward_length(4 * c.n_embd)
        w.add_head_count(c.n_head)
        w.add_layer_norm_eps(c.layer_norm_epsilon)
    else:
        heads = c.num_attention_heads
        w.add_block_count(c.num_hidden_layers)
        w.add_context_length(c.max_position_embeddings)
        w.add_embedding_length(c.hidden_size)
        w.add_feed_forward_length(c.intermediate_size)
        w.add_head_count(heads)
        w.add_head_count_kv(c.num_key_value_heads)
        w.add_layer_norm_rms_eps(c.rms_norm_eps)
        w.add_rope_freq_base(c.rope_parameters["rope_theta"])
        rot = int(c.rope_parameters.get("partial_rotary_factor", 1.0) * c.hidden_size) // heads
        w.add_rope_dimension_count(rot)
    if fam == "granite":
        w.add_attention_scale(c.attention_multiplier)
        w.add_embedding_scale(c.embedding_multiplier)
        w.add_residual_scale(c.residual_multiplier)
        w.add_logit_scale(c.logits_scaling)
    if fam == "phi3":
        orig = c.original_max_position_embeddings
        w.add_rope_scaling_orig_ctx_len(orig)
        scale = c.max_position_embeddings / orig
        w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig)))
        w.add_sliding_window(0)
    w.add_file_type(0)
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    added = {t["id"]: t["content"] for t in tok["added_tokens"]}
    tokens = [added.get(i, t) for t, i in vocab]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([3 if i in added else 1 for i in range(len(tokens))])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]])
    w.add_bos_token_id(c.bos_token_id)
    w.add_eos_token_id(c.eos_token_id)
    w.add_add_bos_token(False)
    names = gguf.get_tensor_name_map(ARCH[fam], 8)
    state = hf.state_dict()
    if getattr(c, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    for name, t in state.items():
        if name.endswith((".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")):
            continue
        arr = to_gguf_layout(name, t, fam, c)
        gname = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gname is not None, name
        if arr.ndim == 2 and qtype == "Q8_0":
            w.add_tensor(gname, gguf.quants.quantize(arr, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
        else:
            w.add_tensor(gname, arr.astype(np.float32))
    if fam == "phi3":
        rope = c.rope_parameters
        w.add_tensor("rope_factors_long.weight", np.array(rope["long_factor"], np.float32))
        w.add_tensor("rope_factors_short.weight", np.array(rope["short_factor"], np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


#: large enough weights that attention is far from uniform: a wrong q/k order or RoPE shows
INIT = 0.3


@pytest.fixture(scope="module")
def dirs(tiny_root: Path) -> dict[str, Path]:
    return {
        "olmo2": make_model(tiny_root / "g-olmo2", "olmo2", seed=31, initializer_range=INIT),
        "granite": make_model(
            tiny_root / "g-granite", "granite", seed=32, initializer_range=INIT, embedding_multiplier=6.0,
            attention_multiplier=0.09, residual_multiplier=0.4, logits_scaling=3.0,
        ),
        "smollm3": make_model(tiny_root / "g-smollm3", "smollm3", seed=33, initializer_range=INIT, num_hidden_layers=4,
                              pad_token_id=None),
        "phi3": make_model(
            tiny_root / "g-phi3", "phi3", seed=34, initializer_range=INIT, pad_token_id=None,
            original_max_position_embeddings=32,
            rope_parameters={**LONGROPE, "partial_rotary_factor": 1.0},
        ),
        "gpt2": make_model(tiny_root / "g-gpt2", "gpt2", seed=35, initializer_range=INIT),
    }  # fmt: skip


def _hf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


IDS = [[5, 17, 99, 3, 250, 41, 8, 77], list(range(10, 50))]  # the second passes 32 positions


@pytest.mark.parametrize("qtype", ["F32", "Q8_0"])
@pytest.mark.parametrize("fam", list(ARCH))
def test_gguf_logits_and_greedy_match_transformers(
    tmp_path: Path, dirs: dict[str, Path], fam: str, qtype: str
) -> None:
    hf = _hf(dirs[fam])
    if qtype == "Q8_0":
        quantize_hf_weights(hf, fam)
    path = write_gguf(tmp_path / f"{fam}-{qtype}.gguf", dirs[fam], hf, fam, qtype)
    ours = Generator.load(path, device="cpu", dtype="float32")
    assert ours.config.arch == fam and ours.config.model_type == fam
    for ids in IDS:
        with torch.no_grad():
            expected = hf(torch.tensor([ids])).logits
            got = ours.model(torch.tensor([ids]))
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    prompt = IDS[0]
    # (Phi-3: transformers recomputes its whole cache with the long factors when generation
    # crosses original_max_position_embeddings; we keep the cached keys, so stay below it)
    new = 24 if fam == "phi3" else 40
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                          dtype=torch.long), max_new_tokens=new, do_sample=False, pad_token_id=0)  # fmt: skip
    expected_ids = out[0, len(prompt) :].tolist()
    result = ours.generate_result(prompt, do_sample=False, max_new_tokens=new)
    if expected_ids[-1] in ours.eos_token_ids:
        expected_ids = expected_ids[:-1]
    assert result.token_ids == expected_ids


def test_gguf_configs_carry_the_family_parameters(tmp_path: Path, dirs: dict[str, Path]) -> None:
    g = open_gguf(write_gguf(tmp_path / "g.gguf", dirs["granite"], _hf(dirs["granite"]), "granite"))
    assert (g.config["attention_multiplier"], g.config["logits_scaling"]) == (
        pytest.approx(0.09), 3.0)  # fmt: skip
    p = open_gguf(write_gguf(tmp_path / "p.gguf", dirs["phi3"], _hf(dirs["phi3"]), "phi3"))
    scaling = p.config["rope_scaling"]
    assert scaling["type"] == "longrope" and len(scaling["long_factor"]) == 8
    assert p.config["original_max_position_embeddings"] == 32
    s = open_gguf(write_gguf(tmp_path / "s.gguf", dirs["smollm3"], _hf(dirs["smollm3"]), "smollm3"))
    assert s.config["no_rope_layer_interval"] == 4
