"""The command line on a remote endpoint: `tui-gen http://HOST:PORT/v1 --prompt TEXT` and the rest.

The headless frame (reading prompts, the output file, write errors) is headless.py's; this
module is the generation step for a RemoteChat (tui_gen/remote), and the check of flags that
mean nothing remotely (the server owns the device, the weights and the decoding strategy).

    --prompt          streamed to stdout as the chunks arrive (--no-stream: at the end)
    --prompts FILE    --batch-size requests in flight at once (the server batches them), the
                      records written in input order
    --json            headless.py's records, plus "model" and "endpoint"
    --raw             the prompt as plain text through /v1/completions (no chat template)

A failure (the server goes away, rejects a value, cuts the stream) is one error line and exit
code 2; what had streamed is already printed. Ctrl+C closes the open streams (the server
stops) and exits 130, as the local modes do.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from tui_gen.cli.headless import Job, Output, _print_summary, _record, _Writer
from tui_gen.cli.parser import sampling_overrides
from tui_gen.cli.prompts_file import PromptSpec
from tui_gen.errors import TuiGenError
from tui_gen.remote import api_key
from tui_gen.sanitize import StreamSanitizer, sanitize

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tui_gen.engine.events import Event, FinishEvent
    from tui_gen.options import SamplingParams
    from tui_gen.remote.backend import RemoteChat


def check_remote_flags(args: argparse.Namespace) -> None:
    """Flags that make no sense for a model on a server: one line naming the flag."""
    given = [
        ("--device", getattr(args, "device", None) not in (None, "auto")),
        ("--dtype", getattr(args, "dtype", None) not in (None, "auto")),
        ("--quantize", getattr(args, "quantize", None) is not None),
        ("--num-beams", (getattr(args, "num_beams", None) or 1) > 1),
        ("--length-penalty", getattr(args, "length_penalty", None) is not None),
        ("--early-stopping", getattr(args, "early_stopping", None) is not None),
        # scoring reads the logits of every prompt token, which chat endpoints do not return
        ("--score", getattr(args, "score", None) is not None),
    ]
    for flag, used in given:
        if used:
            raise TuiGenError(
                f"{flag} does not apply to a remote model (the server decides how it runs the "
                "model); drop it"
            )


def check_local_flags(args: argparse.Namespace) -> None:
    """--model and --api-key belong to an endpoint URL."""
    for flag, value in (("--model", args.remote_model), ("--api-key", args.api_key)):
        if value is not None:
            raise TuiGenError(
                f"{flag} is for a remote endpoint (MODEL given as http://HOST:PORT/v1); "
                f"{args.model} is a local path, so drop {flag}"
            )


def connect(args: argparse.Namespace) -> RemoteChat:
    from tui_gen.remote.backend import RemoteChat

    return RemoteChat.connect(
        str(args.model),
        args.remote_model,
        api_key(args.api_key),
        max_context=args.max_context,
    )


def check_endpoint(args: argparse.Namespace) -> None:
    """Fail fast (one line, exit 2) on an endpoint that is unreachable, refuses the key or is
    not an OpenAI-compatible API, before the full-screen app opens (it connects again)."""
    connect(args).close()


def run_remote_info(args: argparse.Namespace) -> int:
    """`tui-gen info URL`: what the endpoint serves and what tui-gen found out about it."""
    from tui_gen.cli.headless import json_line, print_stdout

    chat = connect(args)
    try:
        counting = chat.count_tokens([{"role": "user", "content": "Hello"}])
        d = {
            "endpoint": chat.endpoint.display,
            "model": chat.model,
            "models": chat.served,
            "max_context": chat.max_context,
            "context_source": chat.context_source,
            "token_counting": chat.token_counting,
            "hello_tokens": counting,
            "defaults": chat.defaults.to_dict(),
        }
    finally:
        chat.close()
    if args.json:
        print_stdout(json_line(d, indent=2))
        return 0
    rows = [
        ("endpoint", d["endpoint"]),
        ("model", d["model"]),
        ("served", ", ".join(chat.served) or "(none listed)"),
        ("context", f"{chat.max_context} tokens ({chat.context_source})"),
        ("token counts", _counting(chat.token_counting)),
    ]
    print_stdout(sanitize("\n".join(f"{k:<14}{v}" for k, v in rows)))
    return 0


def _counting(way: str | None) -> str:
    if way in (None, "estimate"):
        return "estimated (the server has no token counting tui-gen knows)"
    return f"from the server ({way})"


def _jobs(chat: RemoteChat, args: argparse.Namespace, specs: list[PromptSpec]) -> list[Job]:
    from tui_gen.options import InvalidParameterError

    cli = sampling_overrides(args)
    jobs = []
    for i, spec in enumerate(specs):
        where = f"{args.prompts}:{spec.line}: " if spec.line else ""
        if (spec.num_beams or 1) > 1 or spec.length_penalty is not None:
            raise TuiGenError(f"{where}beam search does not apply to a remote model; drop it")
        try:
            p = chat.params(None, **{**cli, **spec.sampling})
        except InvalidParameterError as e:
            raise TuiGenError(f"{where}{e}") from None
        n = spec.num_return_sequences or args.num_return_sequences or 1
        if n > 1 and p.greedy:
            raise TuiGenError(
                f"{where}--num-return-sequences {n} with greedy decoding gives {n} identical "
                "replies; sample (--temperature > 0)"
            )
        jobs.append(Job(spec, i, [], p, n, None, args.chat is not False))
    return jobs


def _system(args: argparse.Namespace, job: Job) -> str | None:
    return job.spec.system if job.spec.system is not None else args.system


def _events(
    chat: RemoteChat,
    args: argparse.Namespace,
    job: Job,
    p: SamplingParams,
    cancel: threading.Event,
) -> Iterator[Event]:
    """The reply to one prompt: a chat message, or with --raw the text's continuation."""
    if not job.chat:
        return chat.stream_completion(job.spec.prompt, p, cancel=cancel)
    messages = [{"role": "user", "content": job.spec.prompt}]
    return chat.stream_reply(messages, p, system=_system(args, job), cancel=cancel)


def _stream_one(
    chat: RemoteChat, args: argparse.Namespace, job: Job, out: Output, cancel: threading.Event
) -> None:
    """One reply, printed as it streams in; on a failure, what came is kept on a full line."""
    from tui_gen.engine.events import TokenEvent
    from tui_gen.remote.client import RemoteError

    safe = StreamSanitizer()
    try:
        for ev in _events(chat, args, job, job.params, cancel):
            if isinstance(ev, TokenEvent) and ev.text:
                text = safe.feed(ev.text)
                if text:
                    out.write(text)
                    out.flush()
    except RemoteError:
        out.write(safe.flush() + "\n")
        out.flush()
        raise
    out.write(safe.flush() + "\n")
    out.flush()


def _finish(
    chat: RemoteChat, args: argparse.Namespace, job: Job, seq: int, cancel: threading.Event
) -> tuple[FinishEvent, SamplingParams]:
    """One reply run to its end (on a worker thread): its FinishEvent and the values used."""
    from tui_gen.engine.events import FinishEvent

    p = job.params
    if p.seed is not None and seq:
        p = p.replace(seed=p.seed + seq)  # reply j reproduces alone with seed + j
    for ev in _events(chat, args, job, p, cancel):
        if isinstance(ev, FinishEvent):
            return ev, p
    raise TuiGenError("the remote reply ended without finishing")  # stream_reply never does


def _run_all(
    chat: RemoteChat,
    args: argparse.Namespace,
    jobs: list[Job],
    writer: _Writer,
    cancel: threading.Event,
) -> tuple[int, int]:
    """Every reply, `--batch-size` requests in flight; records in input order. After Ctrl+C
    the open streams end as "cancelled" and are written; what had not started is not."""
    work = [(job, seq) for job in jobs for seq in range(job.n)]
    counts = [0, 0]  # replies, tokens
    in_flight = max(1, args.batch_size or 1)
    futures: dict[Future[tuple[FinishEvent, SamplingParams]], tuple[int, Job, int]] = {}

    def write(fut: Future[tuple[FinishEvent, SamplingParams]]) -> None:
        position, job, seq = futures.pop(fut)
        ev, p = fut.result()  # a RemoteError ends the run (exit 2)
        rec = _record(job, seq, ev.text, ev.reason, ev.stats, p)
        rec.update(model=chat.model, endpoint=chat.endpoint.display)
        writer.add(position, rec, job.n)
        counts[0] += 1
        counts[1] += ev.stats.generated_tokens

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="tui-gen-remote") as pool:
        try:
            order = 0
            while (work or futures) and not cancel.is_set():
                while work and len(futures) < in_flight:
                    job, seq = work.pop(0)
                    futures[pool.submit(_finish, chat, args, job, seq, cancel)] = (order, job, seq)
                    order += 1
                finished, _ = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    write(fut)
            for fut in list(futures):  # interrupted: these end within a moment
                write(fut)
        except BaseException:
            cancel.set()  # a failure stops the other requests too (their streams close)
            raise
    return counts[0], counts[1]


def generate(args: argparse.Namespace, specs: list[PromptSpec], out: Output) -> int:
    """headless.run_headless's generation step for an endpoint URL."""
    check_remote_flags(args)
    chat = connect(args)
    try:
        jobs = _jobs(chat, args, specs)
        return _generate(chat, args, jobs, out)
    finally:
        chat.close()


def _generate(chat: RemoteChat, args: argparse.Namespace, jobs: list[Job], out: Output) -> int:
    cancel = threading.Event()
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.set()
        cancel.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl+C aborts

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        single = args.prompts is None
        job = jobs[0]
        if single and job.n == 1 and not args.json and not args.no_stream:
            _stream_one(chat, args, job, out, cancel)
        else:
            writer = _Writer(out, args.json, single)
            t0 = time.perf_counter()
            replies, tokens = _run_all(chat, args, jobs, writer, cancel)
            if not single:
                _print_summary(replies, tokens, time.perf_counter() - t0, args.batch_size or 1)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        print("tui-gen: interrupted; kept what was generated", file=sys.stderr)
        return 130
    return 0
