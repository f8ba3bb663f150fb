"""Session-wide tiny models (built once with transformers, saved like real checkpoints)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers beside this file
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # dev/ (not installed)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_models import make_byte_model, make_model

REPO = Path(__file__).resolve().parent.parent
COOKING = REPO / "models" / "cooking"


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_llama(tiny_root: Path) -> Path:
    return make_model(tiny_root / "llama", "llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_root: Path) -> Path:
    return make_model(tiny_root / "gpt2", "gpt2")


@pytest.fixture(scope="session")
def tiny_qwen2(tiny_root: Path) -> Path:
    return make_model(tiny_root / "qwen2", "qwen2")


@pytest.fixture(scope="session")
def tiny_byte(tiny_root: Path) -> Path:
    return make_byte_model(tiny_root / "byte")


@pytest.fixture(scope="session")
def cooking_dir() -> Path:
    if not (COOKING / "model.safetensors").exists():
        pytest.skip("models/cooking has not been trained yet")
    return COOKING


@pytest.fixture(scope="session")
def tiny_bdh(tiny_root: Path) -> Path:
    from bdh_models import make_bdh_model

    return make_bdh_model(tiny_root / "bdh")
