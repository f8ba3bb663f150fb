"""Headless generation: `tui-gen MODEL --prompt TEXT` and `tui-gen MODEL --prompts FILE`.

Everything the user can get wrong is checked before torch is imported (flags, the prompt
file, the output path), so mistakes cost milliseconds. Generation itself is the engine's:
one prompt streams through Generator.stream_events (the native one-call decode step) whatever
the output mode, a prompt file runs through the batched decoder (engine/batch.py) when
--batch-size is above 1 (one prompt at a time through stream_events otherwise), and --num-beams
through engine/beam.py.

Model output never reaches the terminal raw: text output goes through tui_gen.sanitize (escape
sequences removed, other controls shown as visible symbols; on a pipe or file too, since a
control sequence is never useful there either), and JSON output keeps the exact text but writes
every control character as a \\u escape.

Output formats:
  --prompt, text      the reply as it is generated (--no-stream: at the end); with
                      --num-return-sequences N each reply follows a "[i/N]" line
  --prompts, text     one line per reply, in input order, newlines escaped as \\n (and
                      backslashes as \\\\), so replies line up with a one-per-line prompt file
  --json              one JSON object per reply (see `_record`); with --logprobs N, also
                      the per-token "logprobs" and "sampled_logprobs" (cli/logprobs_json.py)

Ctrl+C sets a cancel event that the decode loop checks every step: what was generated so far
is printed/written (finish_reason "cancelled") and the exit code is 130. A second Ctrl+C
aborts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tui_gen.cli.prompts_file import PromptSpec, check_utf8, read_prompts, read_stdin
from tui_gen.errors import TuiGenError
from tui_gen.sanitize import StreamSanitizer, sanitize

if TYPE_CHECKING:
    from tui_gen.engine.batch import Request
    from tui_gen.engine.events import Event
    from tui_gen.engine.generator import Generator
    from tui_gen.options import BeamParams, SamplingParams

#: a generation step: (flags, prompts, output) -> exit code
Generate = Callable[[argparse.Namespace, list[PromptSpec], "Output"], int]

#: flags that only make sense when sampling (beam search is a deterministic search)
SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p")


@dataclass
class Job:
    """One prompt, resolved against the model: token ids, sampling values, how many replies."""

    spec: PromptSpec
    index: int
    ids: list[int]
    params: SamplingParams
    n: int
    beam: BeamParams | None
    chat: bool
    strip: bool = False  # plain chat format: the reply starts after "Assistant:"


# --- checks before loading ------------------------------------------------------------------


def _cli_sampling(args: argparse.Namespace) -> dict[str, Any]:
    from tui_gen.cli.parser import sampling_overrides

    return sampling_overrides(args)


def _precheck(args: argparse.Namespace, specs: list[PromptSpec]) -> None:
    """Flag combinations that are wrong whatever the model is."""
    cli = _cli_sampling(args)
    if cli.get("logprobs") and not args.json:
        raise TuiGenError("--logprobs goes into the JSON records; add --json")
    if args.system is not None:
        check_utf8(args.system, "--system")
    if args.system is not None and args.chat is False:
        raise TuiGenError("--system needs the chat format; drop --raw (or --system)")
    for spec in specs:
        where = f"{args.prompts}:{spec.line}: " if spec.line else ""
        if spec.system is not None and args.chat is False:
            raise TuiGenError(f'{where}"system" needs the chat format; drop --raw')
        if spec.sampling.get("logprobs") and not args.json:
            raise TuiGenError(f'{where}"logprobs" goes into the JSON records; add --json')
        beams = spec.num_beams or args.num_beams or 1
        n = spec.num_return_sequences or args.num_return_sequences or 1
        sampling = {**cli, **spec.sampling}
        _check_combination(where, beams, n, sampling, greedy=_explicit_greedy(sampling))


def _explicit_greedy(sampling: dict[str, Any]) -> bool:
    return sampling.get("do_sample") is False or sampling.get("temperature") == 0


def _check_combination(
    where: str, beams: int, n: int, sampling: dict[str, Any], greedy: bool
) -> None:
    if beams > 1:
        given = [k for k in SAMPLING_ONLY if k in sampling]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise TuiGenError(
                f"{where}{flag} does not apply to beam search (a deterministic search); "
                "drop it, or use --num-beams 1 to sample"
            )
        if n > beams:
            raise TuiGenError(
                f"{where}--num-return-sequences {n} is more than --num-beams {beams}; "
                "beam search returns at most its beams"
            )
    elif n > 1 and greedy:
        raise TuiGenError(
            f"{where}--num-return-sequences {n} with greedy decoding gives {n} identical "
            "replies; sample (--temperature > 0) or use --num-beams"
        )


def _open_output(args: argparse.Namespace) -> IO[str]:
    if not args.output or args.output == "-":
        with contextlib.suppress(AttributeError, ValueError):  # not a real text stream
            sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
        return sys.stdout
    out = Path(args.output)
    if args.prompts and args.prompts != "-":
        try:
            if out.exists() and out.resolve() == Path(args.prompts).resolve():
                raise TuiGenError(f"--output {args.output} is the prompts file; choose another")
        except OSError:
            pass
    if out.is_dir():
        raise TuiGenError(f"--output {args.output}: is a directory; give a file name")
    try:
        return out.open("w", encoding="utf-8")
    except OSError as e:
        raise TuiGenError(f"--output {args.output}: cannot be written ({e.strerror})") from None


def _read_specs(args: argparse.Namespace) -> list[PromptSpec]:
    if args.prompt is not None and args.prompts is not None:
        raise TuiGenError("--prompt and --prompts cannot be used together; pick one")
    if args.prompts is not None:
        return read_prompts(args.prompts)
    text = args.prompt
    if text == "-":
        text = read_stdin().rstrip("\r\n")
    check_utf8(text, "--prompt")
    return [PromptSpec(prompt=text, line=0)]


# --- resolving against the model ------------------------------------------------------------


def _resolve(gen: Generator, args: argparse.Namespace, specs: list[PromptSpec]) -> list[Job]:
    from tui_gen.engine.chat import PLAIN_STOP_STRINGS, render_messages
    from tui_gen.options import BeamParams, InvalidParameterError

    gc = gen.loaded.generation_config
    cli = _cli_sampling(args)
    chat = bool(gen.chat_template) if args.chat is None else args.chat
    if not chat and (args.system is not None or any(s.system is not None for s in specs)):
        raise TuiGenError(
            "this model has no chat template, so prompts run as plain text and a system "
            "prompt has nowhere to go; add --chat (plain User:/Assistant: format) or drop it"
        )
    tok = gen.tokenizer
    jobs = []
    for i, spec in enumerate(specs):
        where = f"{args.prompts}:{spec.line}: " if spec.line else ""
        try:
            p = gen.params(None, **{**cli, **spec.sampling})
        except InvalidParameterError as e:
            raise TuiGenError(f"{where}{e}") from None
        beams = spec.num_beams or args.num_beams or int(gc.get("num_beams") or 1)
        n = spec.num_return_sequences or args.num_return_sequences or 1
        _check_combination(where, beams, n, {**cli, **spec.sampling}, greedy=p.greedy)
        beam = None
        if beams > 1:
            lp = spec.length_penalty
            lp = args.length_penalty if lp is None else lp
            lp = float(gc.get("length_penalty", 1.0)) if lp is None else lp
            es = spec.early_stopping
            es = args.early_stopping if es is None else es
            es = gc.get("early_stopping", False) if es is None else es
            beam = BeamParams(beams, lp, es, n)
        system = spec.system if spec.system is not None else args.system
        strip = False
        if chat:
            msgs = [{"role": "system", "content": system}] if system else []
            msgs.append({"role": "user", "content": spec.prompt})
            text = render_messages(
                gen.chat_template,
                msgs,
                add_generation_prompt=True,
                bos_token=tok.bos_token,
                eos_token=tok.eos_token,
            )
            ids = gen.encode(text, add_special_tokens=not gen.chat_template)
            if not gen.chat_template:
                extra = [s for s in PLAIN_STOP_STRINGS if s not in p.stop_strings]
                p = p.replace(stop_strings=[*p.stop_strings, *extra])
                strip = True
        else:
            ids = gen.encode(spec.prompt)
        if not p.greedy and p.seed is None and beam is None:
            # pick the seed ourselves so every record says how to reproduce it
            p = p.replace(seed=secrets.randbits(62))
        jobs.append(Job(spec, i, ids, p, n, beam, chat, strip))
    return jobs


# --- output ---------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


_JSON_UNSAFE = re.compile(r"[\x7f-\x9f]")


def json_line(rec: Any, **dumps: Any) -> str:
    """`rec` as JSON with no raw control character: json.dumps escapes C0 itself; DEL and the
    C1 controls (U+0080-U+009F, which some terminals obey) become \\u escapes too, so the
    record decodes to the exact text and is still safe to print."""
    text = json.dumps(rec, ensure_ascii=False, **dumps)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _sampling_record(job: Job, params: SamplingParams) -> dict[str, Any]:
    if job.beam is not None:
        return {
            "num_beams": job.beam.num_beams,
            "length_penalty": job.beam.length_penalty,
            "early_stopping": job.beam.early_stopping,
            "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty,
            "stop_strings": params.stop_strings,
        }
    d = params.to_dict()
    d["greedy"] = params.greedy
    return d


def _record(
    job: Job,
    seq: int,
    text: str,
    reason: str,
    stats: Any,
    params: SamplingParams,
    *,
    score: float | None = None,
) -> dict[str, Any]:
    """The JSONL record of one reply."""
    rec: dict[str, Any] = {"index": job.index}
    if job.spec.line:
        rec["line"] = job.spec.line
    if job.spec.id is not None:
        rec["id"] = job.spec.id
    rec.update(
        {
            "sequence": seq,
            "prompt": job.spec.prompt,
            "reply": text.lstrip() if job.strip else text,  # as streamed
            "finish_reason": reason,
            "prompt_tokens": stats.prompt_tokens,
            "generated_tokens": stats.generated_tokens,
            "time_to_first_token": round(stats.time_to_first_token, 4),
            "tokens_per_second": round(stats.decode_tokens_per_second, 2),
            "chat": job.chat,
            "sampling": _sampling_record(job, params),
        }
    )
    if score is not None:
        rec["score"] = score
    return rec


class _Writer:
    """Writes replies in input order, whatever order the batch finishes them in."""

    def __init__(self, out: Output, json_mode: bool, single: bool) -> None:
        self.out, self.json, self.single = out, json_mode, single
        self.pending: dict[int, tuple[dict[str, Any], int]] = {}
        self.next = 0

    def add(self, order: int, rec: dict[str, Any], of: int) -> None:
        self.pending[order] = (rec, of)
        while self.next in self.pending:
            self._write(*self.pending.pop(self.next))
            self.next += 1

    def _write(self, rec: dict[str, Any], of: int) -> None:
        if self.json:
            self.out.write(json_line(rec) + "\n")
        elif self.single:
            if of > 1:
                self.out.write(f"[{rec['sequence'] + 1}/{of}]\n")
            self.out.write(sanitize(rec["reply"]) + "\n")
        else:
            self.out.write(_one_line(sanitize(rec["reply"])) + "\n")
        self.out.flush()


# --- running --------------------------------------------------------------------------------


def _stream_single(gen: Generator, job: Job, out: Output, cancel: threading.Event) -> None:
    """One prompt, one reply, printed as it is generated."""
    from tui_gen.engine.events import FinishEvent, TokenEvent

    started = not job.strip
    safe = StreamSanitizer()
    for ev in gen.stream_events(job.ids, job.params, cancel=cancel):
        if isinstance(ev, TokenEvent) and ev.text:
            text = ev.text
            if not started:
                text = text.lstrip()
                started = bool(text)
            text = safe.feed(text)
            if text:
                out.write(text)
                out.flush()
        elif isinstance(ev, FinishEvent):
            out.write(safe.flush() + "\n")
            out.flush()


class _Progress:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.bar: Any = None
        if total > 1 and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                "{task.fields[rate]}",
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task("generating", total=total, rate="")
            self.bar.start()

    def advance(self, tokens: int, seconds: float) -> None:
        if self.bar is not None:
            rate = f"{tokens / seconds:.1f} tok/s" if seconds > 0 else ""
            self.bar.update(self.task, advance=1, rate=rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _run_jobs(
    gen: Generator,
    jobs: list[Job],
    writer: _Writer,
    batch_size: int,
    cancel: threading.Event,
) -> tuple[int, int]:
    """Run every job (batched, beams one prompt at a time); return (replies, tokens)."""
    from tui_gen.cli.logprobs_json import logprobs_fields
    from tui_gen.engine.batch import Request
    from tui_gen.engine.events import FinishEvent, TokenEvent, TokenLogprobs

    total = sum(j.n for j in jobs)
    progress = _Progress(total)
    t0 = time.perf_counter()
    done = tokens = 0
    order = 0  # position of each reply in the output
    pending: list[tuple[Request, Job, int]] = []  # sampled/greedy replies not yet run
    token_lps: dict[int, list[TokenLogprobs]] = {}  # per reply, with --logprobs

    def events(reqs: list[Request]) -> Iterator[Event]:
        """The batched decoder for batches of several; one at a time through stream_events
        (the single-sequence path, with the native decode step) otherwise."""
        if batch_size > 1 and len(reqs) > 1:
            yield from gen.stream_batch(reqs, cancel=cancel, batch_size=batch_size)
            return
        for r in reqs:
            if cancel.is_set():
                return  # as in a batch: what had not started is not reported
            for ev in gen.stream_events(r.ids, r.params, cancel=cancel):
                if isinstance(ev, FinishEvent) or (isinstance(ev, TokenEvent) and ev.logprobs):
                    yield dataclasses.replace(ev, index=r.index)

    def flush_batch() -> None:
        """Run the pending replies batch by batch; records come out in input order."""
        nonlocal done, tokens
        by_index = {r.index: (r, job, seq) for r, job, seq in pending}
        reqs = [r for r, _, _ in pending]
        pending.clear()
        for ev in events(reqs):
            if isinstance(ev, TokenEvent) and ev.logprobs is not None:
                token_lps.setdefault(ev.index, []).append(ev.logprobs)
            elif isinstance(ev, FinishEvent):
                req, job, seq = by_index[ev.index]
                rec = _record(job, seq, ev.text, ev.reason, ev.stats, req.params)
                if req.params.logprobs:
                    rec.update(logprobs_fields(token_lps.pop(ev.index, [])))
                writer.add(req.index, rec, job.n)
                done += 1
                tokens += ev.stats.generated_tokens
                progress.advance(tokens, time.perf_counter() - t0)

    try:
        for job in jobs:
            if cancel.is_set():
                break
            if job.beam is not None:
                flush_batch()
                if cancel.is_set():
                    break
                res = gen.beam_search(
                    job.ids,
                    job.beam.num_beams,
                    length_penalty=job.beam.length_penalty,
                    early_stopping=job.beam.early_stopping,
                    num_return_sequences=job.n,
                    cancel=cancel,
                    max_new_tokens=job.params.max_new_tokens,
                    repetition_penalty=job.params.repetition_penalty,
                    stop_strings=job.params.stop_strings,
                    logprobs=job.params.logprobs,
                )
                for seq, h in enumerate(res.hypotheses):
                    stats = res.stats
                    stats.generated_tokens = len(h.token_ids)
                    rec = _record(
                        job, seq, h.text, h.finish_reason, stats, job.params, score=h.score
                    )
                    if h.logprobs is not None:
                        rec.update(logprobs_fields(h.logprobs))
                    writer.add(order, rec, job.n)
                    order += 1
                    done += 1
                    tokens += len(h.token_ids)
                    progress.advance(tokens, time.perf_counter() - t0)
                continue
            for seq in range(job.n):
                p = job.params
                if p.seed is not None and seq:
                    p = p.replace(seed=p.seed + seq)  # reply j reproduces alone with seed + j
                pending.append((Request(job.ids, p, order), job, seq))
                order += 1
        flush_batch()
    finally:
        progress.close()
    return done, tokens


def _print_summary(replies: int, tokens: int, seconds: float, batch: int) -> None:
    rate = tokens / seconds if seconds > 0 else 0.0
    print(
        f"tui-gen: {replies} replies, {tokens} tokens in {seconds:.1f} s "
        f"({rate:.1f} tok/s, batch size {batch})",
        file=sys.stderr,
    )


def run_headless(args: argparse.Namespace, generate: Generate | None = None) -> int:
    """Entry point for --prompt/--prompts; returns the exit code (130 after Ctrl+C).

    `generate` is the generation step: the local engine's (`_generate`) unless the caller
    gives another (cli/remote_run.py's for an endpoint URL); the frame around it, prompts,
    output and write errors, is the same."""
    specs = _read_specs(args)
    _precheck(args, specs)
    if generate is None:
        generate = _generate
        if not Path(args.model).expanduser().exists():
            raise TuiGenError(
                f"{args.model}: no such file or directory; give a model directory or .gguf"
            )
    out = _open_output(args)
    try:
        output = Output(out)
        code = generate(args, specs, output)
        output.flush()
        if out is not sys.stdout:
            output.close()  # the last buffered bytes can still find the disk full
        return code
    except BrokenPipeError:
        # the reader went away (`| head`); don't let the exit-time flush complain again
        silence_stdout()
        return 0
    except OutputFailed as failed:
        e = failed.error
        # a full disk, a read-only file system, /dev/full: one line, and no partial file
        if out is sys.stdout:
            silence_stdout()
            raise TuiGenError(
                f"cannot write the output ({e.strerror}); free some space or redirect "
                "stdout elsewhere"
            ) from None
        with contextlib.suppress(OSError):
            out.close()
        with contextlib.suppress(OSError):
            if Path(args.output).is_file():  # never a device (/dev/full) or a FIFO
                Path(args.output).unlink()
        raise TuiGenError(
            f"--output {args.output}: cannot be written ({e.strerror}); nothing was kept; "
            "free some space or choose another path"
        ) from None
    finally:
        if out is not sys.stdout:
            with contextlib.suppress(OSError):
                out.close()


class OutputFailed(Exception):
    """Writing the output failed (a full disk, a read-only file system, /dev/full)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class Output:
    """The output stream, with write errors told apart from every other OSError."""

    def __init__(self, f: IO[str]) -> None:
        self.f = f

    def write(self, text: str) -> None:
        try:
            self.f.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputFailed(e) from e

    def flush(self) -> None:
        try:
            self.f.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputFailed(e) from e

    def close(self) -> None:
        try:
            self.f.close()
        except OSError as e:
            raise OutputFailed(e) from e


def print_stdout(text: str) -> None:
    """Print `text` and a newline to stdout; a full disk or /dev/full is one TuiGenError."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as e:
        silence_stdout()
        raise TuiGenError(
            f"cannot write the output ({e.strerror}); free some space or redirect stdout elsewhere"
        ) from None


def silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null so the exit-time flush of what is still buffered
    does not fail (and print a traceback-like complaint) a second time."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _generate(args: argparse.Namespace, specs: list[PromptSpec], out: Output) -> int:
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
    jobs = _resolve(gen, args, specs)
    cancel = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl+C aborts

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        single = args.prompts is None
        job = jobs[0]
        stream = single and job.n == 1 and job.beam is None and not args.json and not args.no_stream
        t0 = time.perf_counter()
        if stream:
            _stream_single(gen, job, out, cancel)
        else:
            writer = _Writer(out, args.json, single)
            batch = args.batch_size or 1
            replies, tokens = _run_jobs(gen, jobs, writer, batch, cancel)
            if not single:
                _print_summary(replies, tokens, time.perf_counter() - t0, batch)
    finally:
        signal.signal(signal.SIGINT, previous)
    if cancel.is_set():
        print("tui-gen: interrupted; kept what was generated", file=sys.stderr)
        return 130
    return 0
