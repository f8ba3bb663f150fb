"""`tui-gen bench-serve URL --clients 1,4,8`: load-test any OpenAI-compatible server.

At each level C, C clients (threads, one kept-alive connection each: cli/http_stream.py) send
`--requests` streaming chat completions (or, with `--endpoint completions`, raw-prompt
completions: the same work on a server whose chat path is missing or broken, and no chat
template in the way) one after another: greedy, `ignore_eos`, `max_tokens` fixed, so every
reply has the same length on every server that honours ignore_eos (vLLM, llama.cpp, ours).
Reported per level: aggregate tok/s (completion tokens of every reply / the level's wall time)
and the time to first token (first content chunk) at p50 and p99. Tokens are counted from the
usage chunk (`stream_options.include_usage`), else one per content chunk. With `--rounds N`
the levels take turns N times and each is reported over all its rounds, with the spread of
the rounds' tok/s.

Torch-free: it only talks HTTP (httpx for /v1/models, its own lean client for the streams).
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tui_gen.cli.http_stream import StreamConnection
from tui_gen.errors import TuiGenError
from tui_gen.sanitize import sanitize

TIMEOUT = 600.0  # seconds one request may take


@dataclass
class LevelResult:
    clients: int
    requests: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: aggregate tok/s of each round (one entry per round the level ran)
    round_rates: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: LevelResult) -> None:
        """Fold another round of the same level in."""
        self.requests += other.requests
        self.tokens += other.tokens
        self.seconds += other.seconds
        self.ttft += other.ttft
        self.errors += other.errors
        self.round_rates.append(other.tokens_per_second)

    def to_dict(self) -> dict[str, Any]:
        rates = self.round_rates or [self.tokens_per_second]
        return {
            "clients": self.clients,
            "requests": self.requests,
            "completion_tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "rounds": len(rates),
            "tokens_per_second_min": round(min(rates), 2),
            "tokens_per_second_max": round(max(rates), 2),
            "ttft_p50": round(percentile(self.ttft, 50), 4),
            "ttft_p99": round(percentile(self.ttft, 99), 4),
            "errors": len(self.errors),
        }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def first_model(client: Any, url: str) -> str:
    r = client.get(f"{url}/models")
    if r.status_code != 200:
        raise TuiGenError(f"{url}/models answered {r.status_code}; check the URL and --api-key")
    data = r.json().get("data") or []
    if not data:
        raise TuiGenError(f"{url}/models lists no model; pass --model NAME")
    return str(data[0]["id"])


def _content(choice: dict[str, Any]) -> str:
    """The text a streamed choice carries: a chat delta's content or a completion's text."""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


def one_request(
    conn: StreamConnection, body: dict[str, Any], endpoint: str = "chat"
) -> tuple[int, float]:
    """(completion tokens, seconds to the first content) of one streamed completion."""
    path = "chat/completions" if endpoint == "chat" else "completions"
    t0 = time.perf_counter()
    return read_stream(conn.post(path, json.dumps(body).encode()), t0)


def read_stream(chunks: Iterable[bytes], t0: float) -> tuple[int, float]:
    """(completion tokens, seconds from t0 to the first content) of a streamed response's
    body bytes.

    Why the events are not all JSON-decoded: the client shares the machine with the server it
    measures, and decoding every chunk of eight streams cost ~0.3 ms of CPU per token here (a
    third of what the server itself spends). A chunk is decoded until the first content (the
    time to first token), when it may carry an error or the usage, and, only for a server that
    sends no usage, after the stream has ended (to count the content chunks)."""
    ttft = -1.0
    usage = None
    later: list[bytes] = []  # chunks after the first content, decoded only without usage
    first = 0  # content chunks among those decoded as they came
    for data in sse_payloads(chunks):
        if data == b"[DONE]":
            break
        if ttft >= 0 and not _may_matter(data):
            later.append(data)
            continue
        obj = json.loads(data)
        if "error" in obj:
            raise RuntimeError(str(obj["error"].get("message")))
        if obj.get("usage"):
            usage = obj["usage"]
        n = _content_chunks(obj)
        if n and ttft < 0:
            ttft = time.perf_counter() - t0
        first += n
    if usage:
        return int(usage["completion_tokens"]), max(ttft, 0.0)
    return first + sum(_content_chunks(json.loads(d)) for d in later), max(ttft, 0.0)


_NULL_USAGE = re.compile(rb'"usage"\s*:\s*null')


def _may_matter(data: bytes) -> bool:
    """Whether a chunk after the first content may carry an error or the usage."""
    if b'"error"' in data:
        return True
    return b'"usage"' in data and _NULL_USAGE.search(data) is None


def _content_chunks(obj: dict[str, Any]) -> int:
    """How many of a chunk's choices carry text (one token each, for a server without usage)."""
    return sum(1 for ch in obj.get("choices") or [] if _content(ch))


def sse_payloads(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The `data:` payloads (bytes) of a server-sent event stream arriving as byte chunks,
    however the chunks split the events (lines end in LF or CRLF; other fields are skipped)."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if buf.startswith(b"data:"):
        yield buf[5:].strip()


def run_level(
    url: str,
    model: str,
    clients: int,
    requests: int,
    body: dict[str, Any],
    api_key: str | None,
    endpoint: str = "chat",
) -> LevelResult:
    res = LevelResult(clients)
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client_loop() -> None:
        with StreamConnection(url, _headers(api_key), TIMEOUT) as conn:
            start.wait()
            for _ in range(requests):
                try:
                    tokens, ttft = one_request(conn, {**body, "model": model}, endpoint)
                except Exception as e:  # keep measuring; count it
                    with lock:
                        res.errors.append(str(e))
                    continue
                with lock:
                    res.requests += 1
                    res.tokens += tokens
                    res.ttft.append(ttft)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.seconds = time.perf_counter() - t0
    return res


def run_bench_serve(args: Any) -> int:
    import httpx

    url = args.url.rstrip("/")
    try:
        with httpx.Client(timeout=30.0, headers=_headers(args.api_key)) as c:
            model = args.model or first_model(c, url)
    except httpx.HTTPError as e:
        raise TuiGenError(f"cannot reach {url} ({e}); is the server running?") from None
    endpoint = args.endpoint
    prompt: dict[str, Any] = (
        {"messages": [{"role": "user", "content": args.prompt}]}
        if endpoint == "chat"
        else {"prompt": args.prompt}
    )
    body = {
        **prompt,
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    # the levels take turns, round after round: a load that comes and goes on a shared
    # machine then slows every level alike instead of the one that ran at the time
    results = [LevelResult(level) for level in args.clients]
    for _ in range(args.rounds):
        for total in results:
            total.add(
                run_level(url, model, total.clients, args.requests, body, args.api_key, endpoint)
            )
    base = results[0].tokens_per_second if results else 0.0
    for r in results:
        d = r.to_dict()
        if args.json:
            print(json.dumps({"url": url, "model": model, **d}))
            continue
        speedup = r.tokens_per_second / base if base else 0.0
        spread = (
            f" (rounds {d['tokens_per_second_min']:.0f}..{d['tokens_per_second_max']:.0f})"
            if args.rounds > 1
            else ""
        )
        print(
            f"clients {r.clients:>3}: {d['tokens_per_second']:>8.1f} tok/s aggregate{spread} "
            f"({speedup:.2f}x of the first level), TTFT p50 {d['ttft_p50'] * 1000:.0f} ms "
            f"p99 {d['ttft_p99'] * 1000:.0f} ms, {r.requests} requests, {r.tokens} tokens"
            + (f", {len(r.errors)} errors" if r.errors else "")
        )
        for msg in r.errors[:3]:
            print(f"  error: {sanitize(msg)}", file=sys.stderr)
    return 1 if any(r.errors for r in results) else 0
