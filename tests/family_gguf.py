"""Write tiny transformers models of the new families as llama.cpp's converter writes GGUF
files (metadata keys, tensor names, q/k permutation, GPT-2's transposed Conv1D weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

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
        orig = c.original_max_position_embeddings or c.max_position_embeddings
        w.add_rope_scaling_orig_ctx_len(orig)
        scale = c.max_position_embeddings / orig
        if "long_factor" in c.rope_parameters:
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
    if fam == "phi3" and "long_factor" in c.rope_parameters:
        rope = c.rope_parameters
        w.add_tensor("rope_factors_long.weight", np.array(rope["long_factor"], np.float32))
        w.add_tensor("rope_factors_short.weight", np.array(rope["short_factor"], np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
