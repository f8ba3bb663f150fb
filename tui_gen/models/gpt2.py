"""GPT-2 (and nanoGPT): learned positions, pre-LayerNorm blocks, GELU MLP, tied lm_head.

Parameter names follow Hugging Face's GPT2LMHeadModel so checkpoints map one to one; the only
difference is that HF stores projections in Conv1D layout (in, out) and we keep nn.Linear layout
(out, in), transposing once at load time (`convert_weight`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.errors import ModelLoadError, UnsupportedModelError
from tui_gen.models.common import PromptAttention, attend, build_attention_mask
from tui_gen.models.config import ModelConfig, dtype_of, first, token_ids
from tui_gen.models.family import (
    Activation,
    CausalLM,
    NativeLayer,
    NativeSpec,
    NativeUnsupported,
    Position,
    typed_modules,
)
from tui_gen.models.kv_cache import KVCache

_ACTIVATIONS: dict[str, Any] = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}
#: activation_function -> the native step's name for it
_NATIVE_ACTIVATIONS: dict[str, Activation] = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
}


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    """GPT-2's and nanoGPT's config.json spellings -> ModelConfig."""
    hidden = int(first(raw, "n_embd", "hidden_size"))
    heads = int(first(raw, "n_head", "num_attention_heads"))
    inner = first(raw, "n_inner", "intermediate_size")
    if hidden % heads:
        raise ModelLoadError(f"n_embd ({hidden}) must be divisible by n_head ({heads})")
    return ModelConfig(
        model_type=model_type,
        arch="gpt2",
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=int(first(raw, "n_layer", "num_hidden_layers")),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=int(inner) if inner else 4 * hidden,
        max_position_embeddings=int(
            first(raw, "n_positions", "block_size", "n_ctx", "max_position_embeddings")
        ),
        norm_eps=float(first(raw, "layer_norm_epsilon", "layer_norm_eps", default=1e-5)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        bias=bool(raw.get("bias", True)),
        # nanoGPT uses exact GELU; HF GPT-2 the tanh approximation ("gelu_new").
        activation=str(
            raw.get("activation_function", "gelu" if model_type == "nanogpt" else "gelu_new")
        ),
        dtype=dtype_of(raw),
        **token_ids(raw),
    )


def infer_model_type(raw: dict[str, Any]) -> str | None:
    """A config.json without model_type but with nanoGPT's keys is a nanoGPT model."""
    return "nanogpt" if "n_layer" in raw and "n_embd" in raw else None


class Attention(nn.Module):
    #: a faster attention for plain causal prompts, given by the engine (models/common.py)
    prompt_attention: PromptAttention | None = None

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.c_attn = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.bias)

    def forward(
        self, x: torch.Tensor, start: int, cache: KVCache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer, start, k, v)  # (B, H, start+T, D)
        y = attend(q, k, v, mask, causal=mask is None and T > 1, kernel=self.prompt_attention)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.activation not in _ACTIVATIONS:
            raise UnsupportedModelError(
                f"config.json: activation_function {cfg.activation!r} is not supported; "
                f"supported: {', '.join(_ACTIVATIONS)}"
            )
        self.act = _ACTIVATIONS[cfg.activation]
        self.c_fc = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.bias)
        self.attn = Attention(cfg, layer)
        self.ln_2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, start: int, cache: KVCache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), start, cache, mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """The body (HF's `transformer.*` names): embeddings, blocks, final norm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        #: token embedding; the decode layout may swap it for a TransposedEmbedding
        self.wte: nn.Module = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.wpe = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.h = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.bias)


class GPT2(CausalLM):
    """GPT-2 language model. forward(idx (B, T)) -> logits (B, T or 1, vocab)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = Transformer(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self._wte_weight()

    def _wte_weight(self) -> nn.Parameter:
        weight = self.transformer.wte.weight
        assert isinstance(weight, nn.Parameter)
        return weight

    def forward(
        self,
        idx: torch.Tensor,
        start: int = 0,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        key_padding: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """idx (B, T) token ids at positions [start, start+T).

        `positions` (B, T) overrides the position ids (left-padded batches); `key_padding`
        (B, S) marks real keys. With `last_only`, only the last position's logits are computed,
        which saves the (T x vocab) lm_head product during prefill.
        """
        B, T = idx.shape
        if cache is not None:
            cache.check(start, T)
        if positions is None:
            positions = torch.arange(start, start + T, device=idx.device)[None]  # (1, T)
        x = self.transformer.wte(idx) + self.transformer.wpe(positions)  # (B, T, C)
        mask = build_attention_mask(start, T, idx.device, key_padding)
        for block in self.transformer.h:
            x = block(x, start, cache, mask)
        if cache is not None:
            cache.advance(start, T)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.transformer.ln_f(x))  # (B, T|1, vocab)

    def get_input_embeddings(self) -> nn.Module:
        return self.transformer.wte

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.transformer.wte = module

    def native_spec(self) -> NativeSpec:
        cfg, t = self.config, self.transformer
        if cfg.activation not in _NATIVE_ACTIVATIONS:
            raise NativeUnsupported(f"activation {cfg.activation!r}")
        layers = [
            NativeLayer(
                norm1_weight=block.ln_1.weight,
                norm1_bias=block.ln_1.bias,
                norm2_weight=block.ln_2.weight,
                norm2_bias=block.ln_2.bias,
                qkv=block.attn.c_attn,
                o=block.attn.c_proj,
                up=block.mlp.c_fc,
                down=block.mlp.c_proj,
            )
            for block in typed_modules(t.h, Block)
        ]

        def embed(idx: torch.Tensor, position: Position) -> torch.Tensor:
            tokens = t.wte(idx).float().view(idx.shape[0], -1)  # (b, C)
            return (tokens + t.wpe.weight[position].float()).view(-1)  # + (C,) or (b, C)

        return NativeSpec(
            norm="layer",
            activation=_NATIVE_ACTIVATIONS[cfg.activation],
            num_kv_heads=cfg.num_heads,
            layers=layers,
            final_norm_weight=t.ln_f.weight,
            final_norm_bias=t.ln_f.bias,
            head=self.lm_head,
            embed=embed,
        )

    # --- checkpoint mapping -------------------------------------------------------------
    @staticmethod
    def convert_weight(
        name: str, tensor: torch.Tensor, cfg: ModelConfig
    ) -> tuple[str, torch.Tensor] | None:
        """Map a checkpoint tensor to (our name, tensor), or None to skip it."""
        for prefix in ("_orig_mod.", "module."):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            return None  # causal-mask buffers of old checkpoints
        if not name.startswith(("transformer.", "lm_head.")):
            name = "transformer." + name  # checkpoints saved from GPT2Model lack the prefix
        conv1d = cfg.model_type == "gpt2"
        if (
            conv1d
            and name.endswith(".weight")
            and any(p in name for p in (".c_attn.", ".c_proj.", ".c_fc."))
        ):
            tensor = tensor.t()
        return name, tensor


def init_weights(model: GPT2, seed: int = 0) -> None:
    """GPT-2 initialisation (normal 0.02, residual projections scaled), for training."""
    g = torch.Generator().manual_seed(seed)
    n_layer = model.config.num_layers
    for name, p in model.named_parameters():
        if p.dim() == 1:
            with torch.no_grad():
                p.fill_(1.0 if ".ln_" in name and name.endswith("weight") else 0.0)
        else:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
            with torch.no_grad():
                p.normal_(0.0, std, generator=g)
