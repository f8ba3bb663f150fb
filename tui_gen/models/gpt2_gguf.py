"""GPT-2 in llama.cpp's GGUF files ("gpt2" architecture): metadata keys and tensor names.

llama.cpp's converter writes HF's Conv1D weights (c_attn, c_proj, c_fc; stored (in, out))
transposed, as (out, in) matrices; `transposed` tells the reader to turn them back, so the
tensors are exactly the HF checkpoint's and load through :class:`tui_gen.models.gpt2.GPT2`'s
own `convert_weight`. Older converters also wrote `output.weight`, a copy of the embedding.
"""

from __future__ import annotations

import re
from typing import Any

from tui_gen.errors import ModelLoadError
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import GGUFFormat, GGUFMetadata

_LAYER_NAMES = {
    "attn_norm": "ln_1",
    "attn_qkv": "attn.c_attn",
    "attn_output": "attn.c_proj",
    "ffn_norm": "ln_2",
    "ffn_up": "mlp.c_fc",
    "ffn_down": "mlp.c_proj",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "transformer.wte.weight",
    "position_embd.weight": "transformer.wpe.weight",
    "output_norm.weight": "transformer.ln_f.weight",
    "output_norm.bias": "transformer.ln_f.bias",
    "output.weight": "lm_head.weight",
}
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")
_CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def tensor_name(name: str) -> str | None:
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    m = _BLOCK.fullmatch(name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"transformer.h.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}.{m.group(3)}"
    return None


def transposed(hf_name: str) -> bool:
    return hf_name.endswith(_CONV1D)


def config_from_gguf(meta: GGUFMetadata) -> dict[str, Any]:
    path = meta.path
    embd, pos = meta.tensor_shape("token_embd.weight"), meta.tensor_shape("position_embd.weight")
    if embd is None or pos is None:
        raise ModelLoadError(
            f"{path}: no token_embd/position_embd tensor; the file is incomplete"
        )
    hidden = int(meta.require("embedding_length"))
    heads = int(meta.require("attention.head_count"))
    if heads <= 0 or hidden <= 0:
        raise ModelLoadError(f"{path}: head count {heads} / width {hidden} are invalid")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": hidden,
        "n_head": heads,
        "n_layer": int(meta.require("block_count")),
        "n_positions": int(pos[0]),
        "max_position_embeddings": int(pos[0]),  # (the GGUF reader reads this spelling)
        "n_inner": int(meta.get("feed_forward_length", 4 * hidden) or 4 * hidden),
        "layer_norm_epsilon": float(meta.get("attention.layer_norm_epsilon", 1e-5)),
        "activation_function": "gelu_new",
        "vocab_size": int(embd[0]),
        "tie_word_embeddings": meta.tensor_shape("output.weight") is None,
    }


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every GPT-2 weight in the file's (torch-order) shape: Conv1D ones as (out, in)."""
    h, inner, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    out: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (v, h),
        "transformer.wpe.weight": (cfg.max_position_embeddings, h),
        "transformer.ln_f.weight": (h,),
        "transformer.ln_f.bias": (h,),
    }
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = (v, h)
    layer = {
        "ln_1.weight": (h,), "ln_1.bias": (h,), "ln_2.weight": (h,), "ln_2.bias": (h,),
        "attn.c_attn.weight": (3 * h, h), "attn.c_attn.bias": (3 * h,),
        "attn.c_proj.weight": (h, h), "attn.c_proj.bias": (h,),
        "mlp.c_fc.weight": (inner, h), "mlp.c_fc.bias": (inner,),
        "mlp.c_proj.weight": (h, inner), "mlp.c_proj.bias": (h,),
    }  # fmt: skip
    for i in range(cfg.num_layers):
        out |= {f"transformer.h.{i}.{k}": s for k, s in layer.items()}
    return out


FORMAT = GGUFFormat(
    model_types={"gpt2": "gpt2"},
    config=config_from_gguf,
    tensor_name=tensor_name,
    expected_shapes=expected_shapes,
    transposed=transposed,
)
