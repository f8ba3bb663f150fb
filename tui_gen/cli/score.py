"""`tui-gen MODEL --score FILE`: how surprising the model finds each token of a text, and the
text's perplexity (Generator.score, one prefill).

The text is scored as it is (no chat template), encoded with the tokenizer's special tokens (a
BOS when the model writes one); the first token has no prediction and is shown as "-". Text
output is a table, surprisal in bits, tokens quoted as JSON strings (so spaces and newlines are
visible, and nothing reaches the terminal raw); --json writes one object (logprobs_json.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tui_gen.cli.headless import Output, OutputFailed, _open_output, json_line
from tui_gen.cli.logprobs_json import score_record
from tui_gen.cli.prompts_file import read_stdin
from tui_gen.errors import TuiGenError
from tui_gen.sanitize import sanitize


def read_text(path: str) -> str:
    """The text to score ('-' = stdin), as UTF-8."""
    if path == "-":
        return read_stdin()
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TuiGenError(f"{path}: no such file to score") from None
    except IsADirectoryError:
        raise TuiGenError(f"{path}: is a directory; --score needs a text file") from None
    except UnicodeDecodeError:
        raise TuiGenError(f"{path}: not UTF-8 text; --score needs a text file") from None
    except OSError as e:
        raise TuiGenError(f"{path}: cannot be read ({e.strerror})") from None


def check_score_args(args: argparse.Namespace) -> None:
    """Flags that make no sense with --score (before anything loads)."""
    if args.prompt is not None or args.prompts is not None:
        raise TuiGenError("--score scores a text, --prompt/--prompts generate; give one of them")


def run_score(args: argparse.Namespace) -> int:
    check_score_args(args)
    text = read_text(args.score)
    if not Path(args.model).expanduser().exists():
        raise TuiGenError(
            f"{args.model}: no such file or directory; give a model directory or .gguf"
        )
    from tui_gen.engine.generator import Generator

    gen = Generator.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        max_context=args.max_context,
        quantize=getattr(args, "quantize", None),
        kv_cache_dtype=getattr(args, "kv_cache_dtype", "auto"),
        activations=getattr(args, "activations", "fast"),
    )
    top = args.logprobs or 0
    res = gen.score(text, top=top)
    f = _open_output(args)
    out = Output(f)
    try:
        if args.json:
            out.write(json_line(score_record(res, bool(top))) + "\n")
        else:
            out.write(f"{'surprisal':>9}  token\n")
            for t in res.tokens:
                bits = "-" if t.surprisal is None else f"{t.surprisal:.2f}"
                out.write(sanitize(f"{bits:>9}  {json_line(t.text)}") + "\n")
            ppl = res.perplexity
            shown = "n/a (nothing to predict)" if ppl is None else f"{ppl:.3f}"
            out.write(
                f"perplexity {shown} over {res.predicted} predicted tokens (surprisal in "
                "bits; the first token has no prediction)\n"
            )
        out.flush()
    except OutputFailed as failed:
        raise TuiGenError(
            f"cannot write the output ({failed.error.strerror}); free some space or choose "
            "another --output"
        ) from None
    finally:
        if f is not sys.stdout:
            f.close()
    return 0
