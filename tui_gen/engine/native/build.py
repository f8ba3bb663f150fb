"""Build the C kernels once per machine and load them with ctypes.

Why C through ctypes and not a torch C++ extension: the kernels only read raw buffers, so they
need no torch headers; the library compiles in about a second (a torch extension takes ~40 s
of header parsing), so a first run never stalls. It is compiled with `-march=native` for the
CPU it runs on and cached under the user's cache directory, keyed by the source, the compiler,
its flags and the CPU model, so a shared home directory never hands one CPU another's code.

Linked with `-fopenmp`, it shares the process's OpenMP runtime: torch loads its `libgomp.so.1`
first, and the loader reuses a library already loaded under the same soname, so our loops run
on torch's threads rather than a second pool competing for the same cores.

Nothing here is required: without a C compiler, on an unsupported platform, or with
`TUI_GEN_NATIVE=0`, `load()` returns None with a reason and the engine uses torch's kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tui_gen.engine.cache_dir import cache_dir as derived_dir

HERE = Path(__file__).parent
SOURCES = [
    HERE / "qmatmul.c",
    HERE / "decode.c",
    HERE / "ggml_matmul.c",
    HERE / "logprobs.c",
    HERE / "prompt_attention.c",
]
HEADERS = [
    HERE / "qrows.h",
    HERE / "frows.h",
    HERE / "ggml_rows.h",
    HERE / "ggml_x4.h",
    HERE / "ggml_dequant.h",
    HERE / "vmath.h",
    HERE / "prefetch.h",
]
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=gnu11"]
LIBS = ["-lm"]

_lock = threading.Lock()
_state: dict[str, object] = {}


def cache_dir() -> Path:
    """Where built libraries live (engine/cache_dir.py)."""
    return derived_dir("kernels")


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_id() -> str:
    """The CPU model and feature flags: what -march=native compiled for."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))  # one line of each kind: every core says the same


def _flags() -> list[str]:
    """FLAGS plus $TUI_GEN_NATIVE_CFLAGS (say "-march=x86-64-v3" for a library shared by
    several machines; the tests use it to build the AVX2 and portable loops)."""
    return FLAGS + os.environ.get("TUI_GEN_NATIVE_CFLAGS", "").split()


def library_path(cc: str) -> Path:
    key = hashlib.sha256()
    parts = [f.read_bytes() for f in SOURCES + HEADERS]
    for part in (*parts, cc.encode(), " ".join(_flags() + LIBS).encode(), _cpu_id().encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir() / f"qmatmul-{key.hexdigest()[:16]}.so"


def _build(cc: str, out: Path) -> None:
    """Compile to a temporary file and rename it into place, so a crash or a second process
    never leaves a half-written library where the next run would load it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, *_flags(), "-o", tmp, *map(str, SOURCES), *LIBS],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
        _stamp_path(out).write_text(_stamp(Path(tmp)))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _stamp_path(lib: Path) -> Path:
    return lib.with_suffix(".sha256")


def _stamp(lib: Path) -> str:
    """Size and checksum of a built library, recorded beside it at build time."""
    data = lib.read_bytes()
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}\n"


def _intact(lib: Path) -> bool:
    """True when the cached library is the one that was built: a truncated or overwritten file
    would be mapped by dlopen and kill the process with SIGBUS on first use, so it is never
    loaded unless its size and checksum match the stamp written when it was built."""
    try:
        return lib.is_file() and _stamp_path(lib).read_text() == _stamp(lib)
    except OSError:
        return False


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.q_matmul.argtypes = [p, p, p, p, i64, i64, i64, i32, i32]  # x q sm y M N K bits threads
    lib.q_matmul.restype = i32
    lib.q_dequantize.argtypes = [p, p, p, i64, i64, i32, i32]  # q sm w N K bits threads
    lib.q_dequantize.restype = i32
    lib.f_matmul.argtypes = [p, p, p, i64, i64, i64, i32, i32]  # x w y M N K bf threads
    lib.f_matmul.restype = i32
    # model, x, pos, cos, sin, scratch, logits, threads
    lib.decode_step.argtypes = [p, p, i64, p, p, p, p, p, p, i32]  # m x pos cos sin cos2 sin2
    lib.decode_step.restype = i32
    # model rows x column cos sin cos2 sin2 key_padding kp_stride scratch logits threads
    lib.decode_rows.argtypes = [p, i64, p, i64, p, p, p, p, p, i64, p, p, i32]
    lib.decode_rows.restype = i32
    lib.decode_rows_scratch_floats.argtypes = [p, i64]
    lib.decode_rows_scratch_floats.restype = i64
    lib.decode_region_probe.argtypes = [i32, i32]  # threads rounds
    lib.decode_region_probe.restype = i32
    lib.release_thread_pool.argtypes = []
    lib.release_thread_pool.restype = i32
    lib.kernel_isa.argtypes = []
    lib.kernel_isa.restype = i32
    lib.decode_scratch_floats.argtypes = [p]
    lib.decode_scratch_floats.restype = i64
    lib.decode_layout_count.argtypes = []
    lib.decode_layout_count.restype = i64
    lib.decode_layout_name.argtypes = [i64]
    lib.decode_layout_name.restype = ctypes.c_char_p
    lib.decode_layout_value.argtypes = [i64]
    lib.decode_layout_value.restype = i64
    # x rows V stride n ids vals lse (logprobs.c: per-token probabilities, engine/logprobs.py)
    lib.lp_top.argtypes = [p, i64, i64, i64, i32, p, p, p]
    lib.lp_top.restype = i32
    lib.lp_argmax.argtypes = [p, i64, i64, i64, p]  # x rows V stride out (greedy tokens)
    lib.lp_argmax.restype = i32
    # q q_sh q_st k v kv_sh kv_st out T S H KV D scale softcap window threads
    f32 = ctypes.c_float
    lib.prompt_attention_bf16.argtypes = [p, i64, i64, p, p, i64, i64, p, i64, i64, i32, i32,
                                          i32, f32, f32, i64, i32]  # fmt: skip
    lib.prompt_attention_bf16.restype = i32
    lib.gated_activation_rows.argtypes = [i32, p, i64, i64, p, i32]  # act u M I a threads
    lib.gated_activation_rows.restype = i32
    lib.prompt_attention_available.argtypes = []
    lib.prompt_attention_available.restype = i32
    _bind_ggml(lib)
    return lib


def _bind_ggml(lib: ctypes.CDLL) -> None:
    """ggml_matmul.c: products over GGUF blocks (native/gguf_linear.py)."""
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.gg_matmul.argtypes = [p, p, i64, p, i64, i32]  # mat x M y ldy threads
    lib.gg_matmul.restype = i32
    lib.gg_dequantize.argtypes = [p, i32, i32, i64, i64, p, i32]  # w type layout rows K out thr
    lib.gg_dequantize.restype = i32
    lib.gg_dequantize_bf16.argtypes = [p, i32, i32, i64, i64, p, i32]  # as gg_dequantize
    lib.gg_dequantize_bf16.restype = i32
    lib.gg_x4_available.argtypes = []
    lib.gg_x4_available.restype = i32
    lib.gg_x4_pack.argtypes = [i32, p, i64, i64, p]  # type src rows K dst
    lib.gg_x4_pack.restype = i32
    lib.gg_quantize_act.argtypes = [p, i64, i64, p, p, p]  # x M K q d s
    lib.gg_quantize_act.restype = i32
    lib.gg_isa.argtypes = []
    lib.gg_isa.restype = i32
    lib.gg_layout_count.argtypes = []
    lib.gg_layout_count.restype = i64
    lib.gg_layout_name.argtypes = [i64]
    lib.gg_layout_name.restype = ctypes.c_char_p
    lib.gg_layout_value.argtypes = [i64]
    lib.gg_layout_value.restype = i64


def load() -> ctypes.CDLL | None:
    """The kernel library, built on first use; None when it cannot be (see `reason()`)."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        lib, why = None, ""
        if os.environ.get("TUI_GEN_NATIVE", "1").strip().lower() in ("0", "no", "off", "false"):
            why = "disabled by TUI_GEN_NATIVE=0"
        elif sys.platform == "win32":
            why = "not built on Windows"
        elif (cc := _compiler()) is None:
            why = "no C compiler found (install gcc or clang, or set CC)"
        else:
            path = library_path(cc)
            try:
                if not _intact(path):  # missing, truncated, or built before stamps existed
                    _build(cc, path)
                lib = _bind(ctypes.CDLL(str(path)))
            except (OSError, subprocess.SubprocessError, AttributeError) as e:
                why = f"could not build the kernels with {cc}: {e}"
        _state["lib"], _state["reason"] = lib, why
        return lib


def isa() -> str:
    """The vector loops the loaded library runs: "avx512", "avx2" or "portable" ("" if none)."""
    lib = load()
    if lib is None:
        return ""
    return {512: "avx512", 256: "avx2"}.get(lib.kernel_isa(), "portable")


def reason() -> str:
    """Why `load()` returned None ("" when it did not)."""
    load()
    return str(_state.get("reason", ""))


def reset() -> None:
    """Forget the loaded library (tests switch TUI_GEN_NATIVE or the cache directory)."""
    with _lock:
        _state.clear()
