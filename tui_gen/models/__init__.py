"""Architectures, one small module each; `build_model` picks one from a ModelConfig."""

from __future__ import annotations

from torch import nn

from tui_gen.models.config import ModelConfig


def model_class(cfg: ModelConfig) -> type[nn.Module]:
    if cfg.arch == "gpt2":
        from tui_gen.models.gpt2 import GPT2

        return GPT2
    if cfg.arch == "bdh":
        from tui_gen.models.bdh import BDH

        return BDH
    from tui_gen.models.llama import Llama

    return Llama


def build_model(cfg: ModelConfig) -> nn.Module:
    return model_class(cfg)(cfg)
