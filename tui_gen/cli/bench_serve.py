"""`tui-gen bench-serve URL --clients 1,4,8`: load-test any OpenAI-compatible server.

At each level C, C clients (cli/stream_clients.py: one kept-alive connection each, all read
from one thread) send `--requests` streaming chat completions one after another (or, with
`--endpoint completions`, raw-prompt completions: the same work on a server whose chat path
is missing or broken, and no chat template in the way): greedy, `ignore_eos`, `max_tokens`
fixed, so every reply has the same length on every server that honours ignore_eos (vLLM,
llama.cpp, ours). Reported per level: aggregate tok/s (completion tokens of every reply / the
level's wall time) and the time to first token (first content chunk) at p50 and p99. Tokens
are counted from the usage chunk (`stream_options.include_usage`), else one per content
chunk. With `--rounds N` the levels take turns N times and each is reported over all its
rounds, with the spread of the rounds' tok/s.

Torch-free: it only talks HTTP (httpx for /v1/models, its own lean client for the streams).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tui_gen.cli.stream_clients import LevelResult, headers, run_level
from tui_gen.errors import TuiGenError
from tui_gen.sanitize import sanitize


def first_model(client: Any, url: str) -> str:
    r = client.get(f"{url}/models")
    if r.status_code != 200:
        raise TuiGenError(f"{url}/models answered {r.status_code}; check the URL and --api-key")
    data = r.json().get("data") or []
    if not data:
        raise TuiGenError(f"{url}/models lists no model; pass --model NAME")
    return str(data[0]["id"])


def run_bench_serve(args: Any) -> int:
    import httpx

    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise TuiGenError(
            f"bench-serve needs an http(s) URL, got {url!r}; e.g. http://127.0.0.1:8000/v1"
        )
    try:
        with httpx.Client(timeout=30.0, headers=headers(args.api_key)) as c:
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
            res = run_level(url, model, total.clients, args.requests, body, args.api_key, endpoint)
            if res.errors and not res.requests and not res.tokens:
                # nothing answered (a server that went down, `--model` naming none it serves):
                # one line and exit 2 rather than a table of zeros and an error per request
                raise TuiGenError(
                    f"every request to {url} failed, e.g. {sanitize(res.errors[0])}; check "
                    "that the server is running and serves --model"
                )
            total.add(res)
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
