"""The ctypes mirrors of decode.c's structs are checked against the compiled library."""

from __future__ import annotations

import ctypes

import pytest

from tui_gen.engine.native import build, decode

pytestmark = pytest.mark.skipif(build._compiler() is None, reason="no C compiler on this machine")


def test_the_library_and_the_mirrors_agree() -> None:
    lib = build.load()
    assert lib is not None, build.reason()
    c = decode.c_layout(lib)
    assert c == decode.ctypes_layout()
    assert c["model_t"] == ctypes.sizeof(decode._Model) and "qmat_t.bits" in c
    assert decode.layout_mismatch(c, decode.ctypes_layout()) == ""


def test_a_mismatch_is_caught_and_named() -> None:
    lib = build.load()
    assert lib is not None
    c = decode.c_layout(lib)
    moved = dict(c, **{"layer_t.v_cache": c["layer_t.v_cache"] + 8})
    why = decode.layout_mismatch(moved, decode.ctypes_layout())
    assert "\n" not in why and "layer_t.v_cache offset" in why

    class Short(ctypes.Structure):  # qmat_t without its last field
        _fields_ = decode._QMat._fields_[:-1]

    why = decode.layout_mismatch(c, decode.ctypes_layout({**decode.STRUCTS, "qmat_t": Short}))
    assert "qmat_t.bits is missing in decode.py" in why  # (the size is the same: padding)


def test_a_mismatch_keeps_the_torch_path(tiny_llama, monkeypatch) -> None:
    from tui_gen.engine.generator import Generator

    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    monkeypatch.setattr(decode, "_layout_checked", {})
    monkeypatch.setattr(decode, "c_layout", lambda lib: {"qmat_t": 1})
    decoder, why = decode.NativeDecoder.build(gen.model)
    assert decoder is None and why.startswith("decode.c and decode.py disagree")
