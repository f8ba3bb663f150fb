"""Open a GGUF file keeping its quantized types: the default for a .gguf on the CPU.

Every matrix stored as Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K or Q6_K becomes a
GGUFLinear (or, for the token embedding, a GGUFEmbedding) over the memory-mapped file's blocks
(engine/native/gguf_linear.py); the rest (norms, biases, F32/F16/BF16 matrices) is dequantized
to float32 as before. So RSS stays near the file's size, a warm load reads almost nothing, and
the model computes with the published weights. A head tied to a kept embedding is a
GGUFLinear over the same blocks.

A tensor is kept only where the model uses it as it is stored: a 2-D weight of an nn.Linear
or nn.Embedding that the family's `convert_weight` passes through unchanged and the GGUF
format does not transpose (GPT-2's Conv1D weights are dequantized). `--dtype float32` (any
explicit dtype) or `--quantize none` dequantizes everything, as does a machine without the
native kernels (`keep_reason` says why).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tui_gen.engine.loading.gguf_file import TensorInfo
from tui_gen.engine.loading.gguf_reader import GGUFCheckpoint
from tui_gen.engine.native import gguf_linear
from tui_gen.errors import ModelLoadError
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import CausalLM
from tui_gen.models.registry import model_class


def keep_reason(device: torch.device) -> str:
    """Why a GGUF file's types cannot be kept on `device` ("" when they can)."""
    return gguf_linear.keep_unavailable(device)


def _keepable(
    cls: type[CausalLM], cfg: ModelConfig, ckpt: GGUFCheckpoint, name: str, info: TensorInfo
) -> bool:
    if info.type_id not in gguf_linear.KERNEL_TYPES or len(info.shape) != 2:
        return False
    if ckpt.format.transposed(name):
        return False
    probe = torch.empty(info.shape, device="meta")
    mapped = cls.convert_weight(name, probe, cfg)
    return mapped is not None and mapped[0] == name and mapped[1] is probe


def kept_names(ckpt: GGUFCheckpoint, cfg: ModelConfig) -> frozenset[str]:
    """The HF names of the tensors that will stay as GGUF blocks."""
    cls = model_class(cfg)
    return frozenset(
        name for name, info in ckpt.hf_tensor_infos() if _keepable(cls, cfg, ckpt, name, info)
    )


def _install(model: nn.Module, name: str, raw: torch.Tensor, info: TensorInfo) -> nn.Module:
    """Swap the module owning weight `name` for one over the blocks; returns the new module."""
    owner = name.removesuffix(".weight")
    parent_name, _, child = owner.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    mod = getattr(parent, child, None)
    rows, k = info.shape
    new: nn.Module
    if isinstance(mod, nn.Linear) and (mod.out_features, mod.in_features) == (rows, k):
        new = gguf_linear.GGUFLinear([(raw, info.type_id)], k, bias=mod.bias)
    elif isinstance(mod, nn.Embedding) and tuple(mod.weight.shape) == (rows, k):
        new = gguf_linear.GGUFEmbedding(raw, info.type_id, k)
    else:
        raise ModelLoadError(
            f"tensor {info.name!r} ({rows} x {k}) has no linear layer or embedding of that "
            "shape to hold it; load the file with --dtype float32"
        )
    setattr(parent, child, new)
    return new


def install_blocks(
    model: nn.Module, ckpt: GGUFCheckpoint, cfg: ModelConfig, keep: frozenset[str]
) -> None:
    """Put the kept tensors' blocks into a model materialized without them (loader.py)."""
    embedding: tuple[torch.Tensor, int] | None = None
    for name, raw, info in ckpt.blocks(set(keep)):
        new = _install(model, name, raw, info)
        if isinstance(new, gguf_linear.GGUFEmbedding):
            embedding = (raw, info.type_id)
    if cfg.tie_word_embeddings and embedding is not None and "lm_head.weight" not in keep:
        head = model.get_submodule("lm_head")
        if isinstance(head, nn.Linear):  # tied to the (now block) embedding: share the blocks
            model.lm_head = gguf_linear.GGUFLinear([embedding], cfg.hidden_size, repack=False)


def parameters(ckpt: GGUFCheckpoint) -> int:
    """How many numbers the model's tensors hold (kept blocks are buffers, not parameters)."""
    return sum(math.prod(info.shape) for _, info in ckpt.hf_tensor_infos())
