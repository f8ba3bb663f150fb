"""What an architecture family provides: the contract the registry (models/registry.py) lists.

* :class:`CausalLM`: the base of every model class (forward, checkpoint-name mapping, the
  embedding accessors the decode layout uses, and :meth:`CausalLM.native_spec`).
* :class:`NativeSpec`: the model as the native decode step (engine/native/decode.py) reads it,
  declared by the model itself so the engine never reaches into its private attributes.
* :class:`GGUFFormat` and :class:`GGUFMetadata`: how a family reads llama.cpp's GGUF files.
* :class:`Family`: one registry entry tying these together.

Nothing here imports the engine: the engine asks, the models answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import torch
from torch import nn

from tui_gen.models.config import ModelConfig
from tui_gen.models.kv_cache import KVCache

Norm = Literal["rms", "layer"]
#: "silu_gated": silu(gate) * up with gate and up fused in one matrix ("gelu_tanh_gated": Gemma's
#: GeGLU, the same with the tanh GELU); the others act on fc
Activation = Literal["silu_gated", "gelu_tanh", "gelu", "relu", "silu", "gelu_tanh_gated"]


class NativeUnsupported(Exception):
    """The model (as it is now) has no native description; the message says why."""


@dataclass(frozen=True)
class NativeLayer:
    """One block: pre-norm attention with fused q/k/v, then a pre-norm MLP (a None pre-norm
    weight: the block's input goes in as it is, as in OLMo-2's post-norm blocks)."""

    norm1_weight: torch.Tensor | None
    norm1_bias: torch.Tensor | None
    norm2_weight: torch.Tensor | None
    norm2_bias: torch.Tensor | None
    qkv: nn.Module  # (H + 2 KV) * D outputs: q, k, v side by side
    o: nn.Module
    up: nn.Module  # gate and up side by side ("silu_gated"), else the fc layer
    down: nn.Module
    #: RMSNorm weights applied to q and k before RoPE: (head_dim,) to every head (Qwen3, Gemma
    #: 3), or (H * head_dim,) and (KV * head_dim,) over the whole projection (OLMo-2)
    q_norm_weight: torch.Tensor | None = None
    k_norm_weight: torch.Tensor | None = None
    #: RMSNorm weights (hidden,) of the attention / MLP output before its residual add (Gemma's
    #: sandwich norms, OLMo-2's post-norms)
    post_attn_norm_weight: torch.Tensor | None = None
    post_mlp_norm_weight: torch.Tensor | None = None
    window: int | None = None  # sliding window: attends to the last `window` positions only
    local_rope: bool = False  # rotates with NativeSpec.rope_local instead of rope
    rope: bool = True  # False: no rotary embedding in this layer (SmolLM3's NoPE layers)


#: a decode step's position: one int (one row), or a (b,) int64 tensor, one per batch row
Position = int | torch.Tensor


def upto(position: Position) -> int:
    """How many positions a rotary table must hold to cover `position`."""
    return position + 1 if isinstance(position, int) else int(position.max()) + 1


@dataclass(frozen=True)
class NativeSpec:
    """A model as one native decode step computes it (see decode.c for the arithmetic).

    `embed(idx (b, 1), position)` is layer 0's input, b * hidden floats (row after row);
    `rope(position, dtype)` the (cos, sin) rows of that position in the sign-folded form of
    models/llama.py ((rotary_dim,) for an int position, (b, rotary_dim) for b positions), or
    None for a model without rotary embeddings. A row's values must be those it gets alone at
    its position, whatever the other rows' positions (a batch row decodes as it would alone).
    """

    norm: Norm
    activation: Activation
    num_kv_heads: int
    layers: list[NativeLayer]
    final_norm_weight: torch.Tensor
    final_norm_bias: torch.Tensor | None
    head: nn.Module
    embed: Callable[[torch.Tensor, Position], torch.Tensor]
    rope: Callable[[Position, torch.dtype], tuple[torch.Tensor, torch.Tensor]] | None = None
    #: the second rotary table of layers with `local_rope` (Gemma 3's sliding layers)
    rope_local: Callable[[Position, torch.dtype], tuple[torch.Tensor, torch.Tensor]] | None = None
    attn_scale: float | None = None  # None: head_dim ** -0.5
    attn_softcap: float | None = None  # tanh cap on attention scores (Gemma 2)
    final_softcap: float | None = None  # tanh cap on the logits (Gemma 2)
    #: multiplies each attention / MLP output before its residual add (Granite)
    residual_scale: float = 1.0
    logits_scaling: float = 1.0  # the logits are divided by it (Granite)
    #: RoPE on the first rotary_dim dims of each head, whose (cos, sin) rows are that long
    #: (Phi-3's partial rotary); None: the whole head
    rotary_dim: int | None = None


class CausalLM(nn.Module):
    """The interface every model class implements. forward(idx (B, T)) -> logits (B, T|1, V)."""

    config: ModelConfig

    def forward(
        self,
        idx: torch.Tensor,
        start: int = 0,
        # a KVCache, or whatever the model's own `new_cache` makes (BDH's recurrent state):
        # each model class names the one it takes; models/kv_cache.py's new_cache picks it
        cache: Any = None,
        positions: torch.Tensor | None = None,
        key_padding: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def convert_weight(
        name: str, tensor: torch.Tensor, cfg: ModelConfig
    ) -> tuple[str, torch.Tensor] | None:
        """Map a checkpoint tensor to (our parameter name, tensor), or None to skip it."""
        raise NotImplementedError

    def get_input_embeddings(self) -> nn.Module:
        raise NotImplementedError

    def set_input_embeddings(self, module: nn.Module) -> None:
        raise NotImplementedError

    def fuse_projections(self, transposed: bool = False) -> None:
        """Fuse projections for decoding (engine/layout.py); idempotent. Default: none."""

    @classmethod
    def native_unsupported(cls, cfg: ModelConfig) -> str | None:
        """Why the native step cannot compute a model of this config ("family: reason"), or
        None; `info` asks this without building the model, native_spec raises it."""
        return None

    def native_spec(self) -> NativeSpec:
        """The model for the native decode step; raises NativeUnsupported when it has none."""
        raise NativeUnsupported(f"no native decode step for architecture {self.config.arch!r}")


M = TypeVar("M", bound=nn.Module)


def typed_modules(modules: nn.ModuleList, cls: type[M]) -> list[M]:
    """The modules of a ModuleList as the class they are (for the type checker too)."""
    out = []
    for m in modules:
        if not isinstance(m, cls):
            raise TypeError(f"expected {cls.__name__}, found {type(m).__name__}")
        out.append(m)
    return out


class GGUFMetadata(Protocol):
    """A GGUF file's metadata and tensor table as a family's `GGUFFormat.config` reads them
    (implemented by engine/loading/gguf_checkpoint.py)."""

    path: Path
    architecture: str  # general.architecture

    def get(self, key: str, default: Any = None) -> Any:
        """`{architecture}.{key}`, one value for all layers (a per-layer array is an error)."""
        ...

    def require(self, key: str) -> Any:
        """Like get(), but a missing key is a ModelLoadError naming it."""
        ...

    def raw(self, key: str, default: Any = None) -> Any:
        """Any key by its full name (e.g. tokenizer.ggml.model)."""
        ...

    def tensor_shape(self, name: str) -> tuple[int, ...] | None:
        """The torch-order shape of a GGUF tensor, None when the file has none of that name."""
        ...

    def read_tensor(self, name: str) -> torch.Tensor:
        """A (small) GGUF tensor dequantized to float32."""
        ...


@dataclass(frozen=True)
class GGUFFormat:
    """How a family's models are stored in GGUF files (llama.cpp's names and metadata).

    `model_types` maps each `general.architecture` the family reads to the HF model_type its
    config gets. `config` builds an HF-style config.json dict from the metadata (it must set
    "model_type"); `tensor_name` maps a GGUF tensor name to the HF name (None: not a weight of
    the model; names in `skip` are known and ignored); `expected_shapes` lists every HF weight
    and its shape for a config; `permuted_heads(hf_name, cfg)` is the head count whose rows
    llama.cpp's converter permuted in that tensor (None for most tensors); `transposed(hf_name)`
    says llama.cpp stored that tensor transposed relative to the HF checkpoint (GPT-2's Conv1D
    weights): the reader transposes it back, and `expected_shapes` gives the file's shape.
    """

    model_types: Mapping[str, str]
    config: Callable[[GGUFMetadata], dict[str, Any]]
    tensor_name: Callable[[str], str | None]
    expected_shapes: Callable[[ModelConfig], dict[str, tuple[int, ...]]]
    permuted_heads: Callable[[str, ModelConfig], int | None] = lambda name, cfg: None
    skip: frozenset[str] = frozenset()
    transposed: Callable[[str], bool] = lambda hf_name: False
    #: a stored tensor (HF name, float32) -> the HF tensor, when the converter changed values
    #: (Gemma's norms are stored as 1 + w); None: as stored
    adjust: Callable[[str, torch.Tensor], torch.Tensor] | None = None
    #: tokens that also end a reply when the vocabulary has them (Gemma's <end_of_turn>)
    extra_eos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    """One architecture family: see the registry's module docstring for what each field means."""

    name: str
    hf_model_types: tuple[str, ...]
    model_class: Callable[[], type[CausalLM]]
    config_from_hf: Callable[[dict[str, Any], str], ModelConfig]
    describes: str  # models it covers, for error messages: "SmolLM2, TinyLlama, ..."
    #: weight matrices per MLP (3 for gate/up/down, 2 for fc/proj): memory estimates in `info`
    mlp_matrices: int = 2
    #: a config.json without model_type that is still this family's (nanoGPT): its model_type
    infer_model_type: Callable[[dict[str, Any]], str | None] = lambda raw: None
    gguf: GGUFFormat | None = None
    #: the parameter count a config implies, for a family whose layers are not the usual
    #: attention + MLP each (BDH shares one set of weights across layers); None: the default
    num_parameters: Callable[[ModelConfig], int] | None = None
