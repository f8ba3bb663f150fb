"""GGUF formats for Llama-like families (OLMo-2, Granite, SmolLM3): llama_gguf's metadata and
tensor names plus a family's own, and whether llama.cpp permuted q/k rows.

llama.cpp's converters for Granite and SmolLM3 subclass its LlamaModel, so their q/k rows are
permuted like Llama's; OLMo-2's (NEOX-style RoPE in llama.cpp) are stored in HF order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tui_gen.models import llama_gguf
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import GGUFFormat, GGUFMetadata

_BLOCK = re.compile(r"blk\.(\d+)\.(.+)")


def llama_like_format(
    architecture: str,
    hf_class: str,
    *,
    permuted: bool,
    layer_names: Mapping[str, str] | None = None,
    config: Callable[[GGUFMetadata, dict[str, Any]], None] = lambda meta, cfg: None,
    shapes: Callable[[ModelConfig, dict[str, tuple[int, ...]]], None] = lambda cfg, out: None,
) -> GGUFFormat:
    """A GGUFFormat reading `architecture` as HF model_type `architecture`.

    `layer_names` adds per-block GGUF -> HF names; `config(meta, cfg)` adds the family's own
    metadata to the config.json dict; `shapes(cfg, out)` edits llama_gguf's expected shapes.
    """
    extra = dict(layer_names or {})

    def tensor_name(name: str) -> str | None:
        m = _BLOCK.fullmatch(name)
        if m and m.group(2) in extra:
            return f"model.layers.{m.group(1)}.{extra[m.group(2)]}"
        return llama_gguf.tensor_name(name)

    def config_from_gguf(meta: GGUFMetadata) -> dict[str, Any]:
        cfg = llama_gguf.config_from_gguf(meta)
        cfg["architectures"] = [hf_class]
        cfg["model_type"] = architecture
        config(meta, cfg)
        return cfg

    def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        out = llama_gguf.expected_shapes(cfg)
        shapes(cfg, out)
        return out

    def permuted_heads(hf_name: str, cfg: ModelConfig) -> int | None:
        if not permuted:
            return None
        return {"q_proj": cfg.num_heads, "k_proj": cfg.num_kv_heads}.get(hf_name.split(".")[-2])

    return GGUFFormat(
        model_types={architecture: architecture},
        config=config_from_gguf,
        tensor_name=tensor_name,
        expected_shapes=expected_shapes,
        permuted_heads=permuted_heads,
    )
