"""config.json of a BDH model (pathwaycom/bdh's BDHConfig keys), read without torch.

BDH has no positional table: rope over an unbounded recurrent state is its only notion of
position, so its context is "unbounded" (UNBOUNDED_CONTEXT). A config that records the length
it was trained on (`block_size`) keeps it as `trained_context`, for display only.
"""

from __future__ import annotations

from typing import Any

from tui_gen.errors import ModelLoadError
from tui_gen.models.config import ModelConfig

#: what max_position_embeddings holds for a model without a positional limit
UNBOUNDED_CONTEXT = 2**31 - 1

#: upstream's rope base (bdh.py: get_freqs(N, theta=2**16))
ROPE_THETA = float(2**16)

#: the keys of upstream's BDHConfig (dropout only matters for training)
BDH_KEYS = ("n_layer", "n_embd", "n_head", "mlp_internal_dim_multiplier", "vocab_size")


def latent_size(n_embd: int, n_head: int, multiplier: int) -> int:
    """N = multiplier * D / nh, the per-head sparse dimension."""
    return multiplier * n_embd // n_head


def infer_model_type(raw: dict[str, Any]) -> str | None:
    """pathwaycom/bdh's BDHConfig has no model_type; its multiplier key gives it away."""
    return "bdh" if "mlp_internal_dim_multiplier" in raw else None


def config_from_hf(raw: dict[str, Any], model_type: str = "bdh") -> ModelConfig:
    """The registry's reader for a BDH config.json (see parse_bdh)."""
    return ModelConfig(**parse_bdh(raw))


def parse_bdh(raw: dict[str, Any], source: str = "config.json") -> dict[str, Any]:
    """ModelConfig's fields for model_type "bdh": head_dim holds N, intermediate_size nh*N."""
    D = int(raw["n_embd"])
    nh = int(raw["n_head"])
    mult = int(raw.get("mlp_internal_dim_multiplier", 128))
    if D <= 0 or nh <= 0 or mult <= 0 or (mult * D) % nh:
        raise ModelLoadError(
            f"{source}: mlp_internal_dim_multiplier * n_embd ({mult} * {D}) must be a positive "
            f"multiple of n_head ({nh})"
        )
    N = latent_size(D, nh, mult)
    trained = raw.get("block_size") or raw.get("trained_context")
    return dict(
        model_type="bdh",
        arch="bdh",
        vocab_size=int(raw.get("vocab_size", 256)),
        hidden_size=D,
        num_layers=int(raw["n_layer"]),
        num_heads=nh,
        num_kv_heads=nh,
        head_dim=N,
        intermediate_size=nh * N,
        max_position_embeddings=UNBOUNDED_CONTEXT,
        norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_theta=float(raw.get("rope_theta", ROPE_THETA)),
        bias=False,
        activation="relu",
        dtype=str(raw["dtype"]).replace("torch.", "") if raw.get("dtype") else None,
        recurrent=True,
        trained_context=int(trained) if trained else None,
    )


def num_params(cfg: Any) -> int:
    """encoder + encoder_v (nh, D, N), decoder (nh*N, D), embed and lm_head (V x D)."""
    D, nh, N, V = cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.vocab_size
    return 3 * nh * D * N + 2 * V * D
