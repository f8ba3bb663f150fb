"""The `tui-gen` command: the TUI by default, headless with --prompt/--prompts, plus subcommands.

    tui-gen MODEL                      full-screen chat
    tui-gen http://HOST:PORT/v1        the same on an OpenAI-compatible server (--model NAME)
    tui-gen MODEL --prompt TEXT        one reply to stdout (streamed)
    tui-gen MODEL --prompts FILE       every prompt of a file
    tui-gen MODEL --score FILE         per-token surprisal and the perplexity of a text
    tui-gen info MODEL                 what the model is
    tui-gen bench MODEL                speed, side by side with other engines
    tui-gen serve MODEL                an OpenAI-compatible HTTP server (the serve extra)
    tui-gen bench-serve URL            load-test any OpenAI-compatible server
    tui-gen import FILE.gguf OUT_DIR   write a GGUF as a Hugging Face-style directory
    tui-gen import CKPT.pt OUT_DIR     the same for a BDH train.py checkpoint (--n-layer N)

This module imports neither torch nor Textual at the top: `--help` and argument errors must be
instant, and the TUI paints before torch loads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tui_gen.cli.headless import print_stdout, silence_stdout
from tui_gen.cli.parser import (
    build_bench_serve_parser,
    build_import_parser,
    build_info_parser,
    build_main_parser,
    build_serve_parser,
    sampling_overrides,
)
from tui_gen.cli.remote_run import check_local_flags, check_remote_flags
from tui_gen.errors import TuiGenError
from tui_gen.remote import api_key, is_endpoint
from tui_gen.sanitize import sanitize

if TYPE_CHECKING:
    from tui_gen.app.config import AppConfig

SUBCOMMANDS = ("info", "bench", "serve", "bench-serve", "import")


def app_config(args: argparse.Namespace) -> AppConfig:
    """The app's configuration from the main command's flags (flags not given are None)."""
    from tui_gen.app.config import AppConfig
    from tui_gen.app.params import BY_NAME, clean_values

    overrides = sampling_overrides(args)
    sampling = clean_values({k: v for k, v in overrides.items() if k in BY_NAME})
    if overrides.get("do_sample") is False:
        sampling["temperature"] = 0.0  # --greedy: the slider shows it, and can undo it
    remote = is_endpoint(str(args.model))
    return AppConfig(
        model=str(args.model),
        remote_model=args.remote_model if remote else None,
        api_key=api_key(args.api_key) if remote else None,
        device=args.device or "auto",
        dtype=args.dtype or "auto",
        max_context=args.max_context,
        quantize=args.quantize,
        kv_cache_dtype=getattr(args, "kv_cache_dtype", "auto"),
        activations=getattr(args, "activations", "fast"),
        theme=args.theme,
        transcripts=args.transcripts,
        system=args.system,
        sampling=sampling,
        stop=list(overrides.get("stop_strings", [])),
        seed=overrides.get("seed"),
    )


def _run_info(argv: Sequence[str]) -> int:
    args = build_info_parser().parse_args(argv)
    if is_endpoint(str(args.model)):
        check_remote_flags(args)
        from tui_gen.cli.remote_run import run_remote_info

        return run_remote_info(args)
    check_local_flags(args)
    from tui_gen.cli.info import run_info

    return run_info(args)


def _run_bench(argv: Sequence[str]) -> int:
    from tui_gen.cli.bench import main as bench_main

    return bench_main(list(argv))


def _run_serve(argv: Sequence[str]) -> int:
    args = build_serve_parser().parse_args(argv)
    from tui_gen.server.run import check_extra, run_serve

    check_extra()  # before the model path: the install line is the first thing to fix
    _check_model_path(str(args.model))
    return run_serve(args)


def _run_bench_serve(argv: Sequence[str]) -> int:
    args = build_bench_serve_parser().parse_args(argv)
    from tui_gen.cli.bench_serve import run_bench_serve

    return run_bench_serve(args)


def _run_import(argv: Sequence[str]) -> int:
    args = build_import_parser().parse_args(argv)
    if args.gguf.lower().endswith((".pt", ".pth")):  # a BDH train.py checkpoint
        from tui_gen.engine.loading.bdh_checkpoint import import_checkpoint

        print(import_checkpoint(args.gguf, args.out_dir, n_layer=args.n_layer))
        return 0
    from tui_gen.engine.loading.gguf_reader import import_gguf

    out = import_gguf(args.gguf, args.out_dir)
    print_stdout(sanitize(str(out)))
    return 0


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        run = {
            "info": _run_info,
            "bench": _run_bench,
            "serve": _run_serve,
            "bench-serve": _run_bench_serve,
            "import": _run_import,
        }[argv[0]]
        return run(argv[1:])
    args = build_main_parser().parse_args(argv)
    remote = is_endpoint(str(args.model))  # the one place that decides local or remote
    if remote:
        check_remote_flags(args)
    else:
        check_local_flags(args)
    if args.score is not None:
        from tui_gen.cli.score import run_score

        return run_score(args)
    if args.prompt is not None or args.prompts is not None:
        from tui_gen.cli.headless import run_headless

        if remote:
            from tui_gen.cli.remote_run import generate

            return run_headless(args, generate)
        return run_headless(args)
    # before the screen opens, as the CLI does: a typo never opens the app to show an error
    if remote:
        from tui_gen.cli.remote_run import check_endpoint

        check_endpoint(args)
    else:
        _check_model_path(str(args.model))
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise TuiGenError(
            "the full-screen app needs a terminal; use --prompt TEXT (or --prompt -) for "
            "scripts and pipes"
        )
    from tui_gen.app import run_app

    return run_app(app_config(args))


def _check_model_path(model: str) -> None:
    """Fail fast (one line, exit 2) on a model path that is not there or is not a model, so a
    typo never opens the full-screen app just to show an error box. The loader checks again."""
    from pathlib import Path

    path = Path(model).expanduser()
    if not path.exists():
        raise TuiGenError(f"{path}: no such file or directory; give a model directory or .gguf")
    suffixes = (".gguf", ".pt", ".pth")  # GGUF files and BDH train.py checkpoints
    looks_like_model = (
        path.is_file() and (path.suffix.lower() in suffixes or path.name == "config.json")
    ) or (
        path.is_dir()
        and ((path / "config.json").is_file() or any(path.glob("*.pt")) or any(path.glob("*.pth")))
    )
    if not looks_like_model:
        raise TuiGenError(
            f"{path}: not a model; give a directory with config.json, a .gguf file or a BDH .pt"
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _dispatch(argv)
    except TuiGenError as e:
        # messages quote file contents and names (a tokenizer.json, a template): one line,
        # with nothing in it that a terminal would obey
        print(f"tui-gen: error: {error_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit as e:  # argparse's --help and errors: their output is flushed here too
        if e.code is not None and not isinstance(e.code, int):
            raise
        code = e.code or 0
    try:
        sys.stdout.flush()  # here, not at exit: a full disk is an error line, not a complaint
    except BrokenPipeError:
        silence_stdout()
    except OSError as e:
        silence_stdout()
        print(
            f"tui-gen: error: cannot write the output ({e.strerror}); free some space or "
            "redirect stdout elsewhere",
            file=sys.stderr,
        )
        return 2
    return code


def error_line(e: BaseException) -> str:
    """The message of `e` as one terminal-safe line: control characters made visible, line
    breaks shown as spaces."""
    return " ".join(sanitize(str(e)).split("\n")).replace("\t", " ")
