"""Architectures, one small module each, listed in models/registry.py."""

from __future__ import annotations

from tui_gen.models.registry import build_model, model_class

__all__ = ["build_model", "model_class"]
