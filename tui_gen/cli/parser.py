"""Every flag of the command line, declared once: the main command, `info` and `import`.

Flag types check ranges with tui_gen.options (the one validation the engine uses too), so a bad
value fails here in one line, before torch is imported.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from tui_gen import __version__


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int(name: str, minimum: int | None = None):
    """An argparse type: an integer, at least `minimum` when given, with a one-line error."""

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {s!r}") from None
        if minimum is not None and v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum}, got {v}")
        return v

    return parse


def positive_int(name: str):
    return _int(name, 1)


def _non_negative_int(name: str):
    return _int(name, 0)


def _float(name: str):
    def parse(s: str) -> float:
        try:
            return float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {s!r}") from None

    return parse


def _checked(name: str, parse):
    """An argparse type: parse the text, then check the range (prompts_file.check_value)."""
    key = name.lstrip("-").replace("-", "_")

    def check(s: str):
        v = parse(s)
        from tui_gen.cli.prompts_file import check_value

        try:
            return check_value(key, v)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(key + " ")) from None

    return check


def _early_stopping(s: str) -> bool | str:
    choices: dict[str, bool | str] = {"true": True, "false": False, "never": "never"}
    v = choices.get(s.strip().lower())
    if v is None:
        raise argparse.ArgumentTypeError(
            f"--early-stopping must be true, false or never, got {s!r}"
        )
    return v


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--device", default="auto", help="auto (cuda, mps, cpu) | cpu | cuda[:N] | mps")
    g.add_argument(
        "--dtype", default="auto", help="auto (from config) | float32 | bfloat16 | float16"
    )
    g.add_argument(
        "--kv-cache-dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="what the KV cache keeps: auto (the model's dtype) | float32 | bfloat16 (half "
        "the memory and the attention's reads; greedy text may differ from float32's)",
    )
    g.add_argument(
        "--activations",
        choices=("fast", "precise"),
        default="fast",
        help="integer-dot products (GGUF blocks, int4): fast = 8-bit activations, as llama.cpp; "
        "precise = two 8-bit planes, float32's next tokens for ~1/3 more decode time",
    )
    g.add_argument(
        "--max-context",
        type=positive_int("--max-context"),
        default=None,
        help="KV cache size in tokens (default: the model's context, at most 4096; for an "
        "endpoint: its context when the server does not say)",
    )
    g.add_argument(
        "--quantize",
        choices=("none", "int8", "int4", "keep"),
        default=None,
        help="weight-only quantization in groups of 32: int8 (near-lossless) or int4 (fastest: "
        "Q4_1 blocks, Q8_0 lm_head, 8-bit activations on the CPU, as llama.cpp); slightly "
        "different text. A .gguf file keeps its own quantized types by default (keep); none or "
        "--dtype float32 dequantizes it",
    )


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (defaults come from the model's generation_config.json)")
    g.add_argument(
        "--temperature", type=_checked("--temperature", _float("--temperature")), help="0 = greedy"
    )
    g.add_argument("--top-k", type=_non_negative_int("--top-k"), help="0 = off")
    g.add_argument("--top-p", type=_checked("--top-p", _float("--top-p")), help="1 = off")
    g.add_argument("--min-p", type=_checked("--min-p", _float("--min-p")), help="0 = off")
    g.add_argument(
        "--repetition-penalty",
        type=_checked("--repetition-penalty", _float("--repetition-penalty")),
        help="1 = off",
    )
    g.add_argument("--max-new-tokens", type=_checked("--max-new-tokens", _int("--max-new-tokens")))
    g.add_argument(
        "--stop",
        action="append",
        default=None,
        metavar="TEXT",
        help="stop when the reply contains TEXT (repeatable)",
    )
    g.add_argument(
        "--seed", type=_checked("--seed", _int("--seed")), help="make sampling reproducible"
    )
    g.add_argument("--greedy", action="store_true", help="always take the most likely token")


def add_remote_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("remote model (MODEL is an http:// or https:// endpoint URL)")
    g.add_argument(
        "--model",
        dest="remote_model",
        metavar="NAME",
        help="the served model to use (default: the first that GET /v1/models lists)",
    )
    g.add_argument(
        "--api-key",
        metavar="KEY",
        help="sent as 'Authorization: Bearer KEY' (default: the TUI_GEN_API_KEY variable); "
        "never saved",
    )


def sampling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling flags the user actually gave, with Hugging Face names."""
    out: dict[str, Any] = {}
    for flag, name in (
        ("temperature", "temperature"),
        ("top_k", "top_k"),
        ("top_p", "top_p"),
        ("min_p", "min_p"),
        ("repetition_penalty", "repetition_penalty"),
        ("max_new_tokens", "max_new_tokens"),
        ("seed", "seed"),
        ("logprobs", "logprobs"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            out[name] = v
    if getattr(args, "stop", None):
        out["stop_strings"] = list(args.stop)
    if getattr(args, "greedy", False):
        out["do_sample"] = False
    return out


def build_main_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="tui-gen",
        description="Chat with a local language model in the terminal. "
        "Without --prompt/--prompts it opens the full-screen app.",
        epilog="subcommands: tui-gen info MODEL | tui-gen bench MODEL | "
        "tui-gen serve MODEL | tui-gen bench-serve URL | tui-gen import FILE.gguf OUT_DIR",
    )
    p.add_argument(
        "model",
        help="model directory (config.json, model.safetensors, tokenizer.json), a .gguf file, "
        "or an OpenAI-compatible endpoint URL (http://HOST:PORT/v1)",
    )
    p.add_argument("--version", action="version", version=f"tui-gen {__version__}")
    h = p.add_argument_group("headless generation")
    h.add_argument("--prompt", help="generate one reply and print it ('-' reads stdin)")
    h.add_argument(
        "--prompts",
        metavar="FILE",
        help="run every prompt of FILE: one per line, or JSONL objects with 'prompt' and "
        "optional per-prompt values (temperature, max_new_tokens, seed, stop, system, "
        "num_return_sequences, num_beams, id, ...); '-' reads stdin",
    )
    h.add_argument(
        "--output",
        metavar="FILE",
        help="write replies to FILE instead of stdout (with --prompts: one line per reply, "
        "newlines escaped as \\n, in input order)",
    )
    h.add_argument("--no-stream", action="store_true", help="print the reply when it is complete")
    h.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per reply: prompt, reply, finish_reason, prompt/generated token "
        "counts, time_to_first_token, tokens_per_second, the sampling values used",
    )
    h.add_argument(
        "--logprobs",
        type=_checked("--logprobs", _int("--logprobs")),
        metavar="N",
        help="with --json: each generated token's log-probability and the N (<= 20) most "
        "likely alternatives, under the raw and the sampled distribution; with --score: the "
        "N tokens the model expected at each position",
    )
    h.add_argument(
        "--score",
        metavar="FILE",
        help="print how surprising each token of FILE is to the model (bits) and the "
        "text's perplexity ('-' reads stdin; --json for one JSON object)",
    )
    h.add_argument(
        "--num-return-sequences",
        type=positive_int("--num-return-sequences"),
        metavar="N",
        help="replies per prompt (sampled; with --num-beams, the N best beams)",
    )
    h.add_argument(
        "--batch-size",
        type=positive_int("--batch-size"),
        default=8,
        metavar="B",
        help="sequences decoded together by --prompts (default 8)",
    )
    h.add_argument(
        "--num-beams",
        type=positive_int("--num-beams"),
        metavar="N",
        help="beam search with N beams (deterministic; default 1 = sample or greedy)",
    )
    h.add_argument(
        "--length-penalty",
        type=_checked("--length-penalty", _float("--length-penalty")),
        metavar="X",
        help="beam score = log-prob / length**penalty (default 1; > 0 favours longer)",
    )
    h.add_argument(
        "--early-stopping",
        type=_early_stopping,
        metavar="{true,false,never}",
        help="beam search: stop when N beams finished (true), when none can improve "
        "(false, default), or only at the length limit (never)",
    )
    mode = h.add_mutually_exclusive_group()
    mode.add_argument(
        "--chat",
        dest="chat",
        action="store_true",
        default=None,
        help="apply the chat template (default when the model has one)",
    )
    mode.add_argument(
        "--raw", dest="chat", action="store_false", help="feed the prompt as plain text"
    )
    p.add_argument("--system", help="system prompt")
    add_sampling_options(p)
    add_model_options(p)
    add_remote_options(p)
    a = p.add_argument_group("app")
    a.add_argument("--theme", help="colour theme (see the command palette for the list)")
    a.add_argument("--transcripts", metavar="DIR", help="folder for saved conversations")
    return p


def build_info_parser() -> argparse.ArgumentParser:
    p = Parser(prog="tui-gen info", description="Describe a model without generating.")
    p.add_argument("model", help="a model directory, a .gguf file or an endpoint URL")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_model_options(p)
    add_remote_options(p)
    return p


def _clients(s: str) -> list[int]:
    try:
        levels = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--clients must be integers separated by commas (1,4,8), got {s!r}"
        ) from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"--clients must be integers >= 1, got {s!r}")
    return levels


def build_serve_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="tui-gen serve",
        description="Serve a model over the OpenAI HTTP API (/v1/chat/completions, "
        "/v1/completions, /v1/models, /health) with continuous batching. Needs the serve "
        "extra: pip install 'tui-gen[serve]'.",
    )
    p.add_argument("model", help="model directory or .gguf file")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=_int("--port", 0), default=8000, help="default 8000")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' on every /v1 request",
    )
    p.add_argument(
        "--model-name", metavar="NAME", help="the id /v1/models lists (default: the model's name)"
    )
    p.add_argument(
        "--max-batch",
        type=positive_int("--max-batch"),
        default=8,
        metavar="B",
        help="requests decoded together (default 8); more wait in a queue",
    )
    add_model_options(p)
    return p


def build_bench_serve_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="tui-gen bench-serve",
        description="Load-test any OpenAI-compatible server: aggregate tok/s and time to first "
        "token (p50/p99) at each number of concurrent streaming clients.",
    )
    p.add_argument("url", help="the API base, e.g. http://127.0.0.1:8000/v1")
    p.add_argument(
        "--clients", type=_clients, default=[1, 4, 8], help="concurrency levels (default 1,4,8)"
    )
    p.add_argument(
        "--requests",
        type=positive_int("--requests"),
        default=3,
        metavar="N",
        help="requests each client sends one after another per level (default 3)",
    )
    p.add_argument(
        "--max-tokens",
        type=positive_int("--max-tokens"),
        default=64,
        metavar="N",
        help="tokens per reply (greedy, ignore_eos; default 64)",
    )
    p.add_argument(
        "--rounds",
        type=positive_int("--rounds"),
        default=1,
        metavar="N",
        help="run every level N times, the levels taking turns, and report each level over "
        "all its rounds with the spread (a shared machine's load then hits every level alike)",
    )
    p.add_argument("--prompt", default="How do I make a simple tomato soup?")
    p.add_argument(
        "--endpoint",
        choices=["chat", "completions"],
        default="chat",
        help="POST /v1/chat/completions (default) or /v1/completions with the raw prompt",
    )
    p.add_argument("--model", help="model id (default: the first of GET /v1/models)")
    p.add_argument("--api-key", metavar="KEY", help="sent as 'Authorization: Bearer KEY'")
    p.add_argument("--json", action="store_true", help="one JSON object per level")
    return p


def build_import_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="tui-gen import",
        description="Write a GGUF file, or a BDH train.py checkpoint (.pt/.pth), as a Hugging "
        "Face-style model directory.",
    )
    p.add_argument("gguf", metavar="FILE", help="the .gguf file, or a BDH .pt/.pth checkpoint")
    p.add_argument("out_dir", help="directory to create")
    p.add_argument(
        "--n-layer",
        type=int,
        default=None,
        help="BDH: the number of layers (shared weights do not say; else config.json beside)",
    )
    return p
