"""The HTTP API (FastAPI): /health, /v1/models, /v1/chat/completions, /v1/completions.

Handlers run on the event loop and never touch the model: they turn a request into Jobs
(convert.py), hand them to the engine's Scheduler (one thread owns the model, continuous
batching) and turn its events back into OpenAI's JSON or server-sent events. Events cross from
the scheduler thread into each request's asyncio queue through one `_Relay` per event loop,
which wakes the loop once per batch of events rather than once per event.

A client that goes away stops its rows: a stream's generator is closed by Starlette when the
client disconnects (its `finally` sets the jobs' cancel Events), and a non-streaming request
polls for the disconnect while it waits. The scheduler drops a cancelled row within one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tui_gen.engine.events import Event, FinishEvent, TokenEvent, TokenLogprobs
from tui_gen.engine.scheduler import DEFAULT_MAX_BATCH, Job, Scheduler
from tui_gen.errors import TuiGenError
from tui_gen.server.convert import (
    ApiError,
    chat_logprobs,
    chat_prompt,
    choice_seed,
    completion_logprobs,
    completion_prompts,
    finish_reason,
    logit_bias,
    requested_top,
    sampling_params,
)
from tui_gen.server.middleware import AuthAndLog
from tui_gen.server.schemas import ChatCompletionRequest, CompletionRequest, error_body
from tui_gen.server.sse import DONE, Chunks, sse

#: how often a non-streaming request checks whether its client is still there (seconds)
DISCONNECT_POLL = 0.25


class ServerState:
    """The model the server serves: None while loading, then a Generator and its Scheduler."""

    def __init__(
        self, model_name: str, api_key: str | None = None, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        self.model_name = model_name
        self.api_key = api_key or None
        self.max_batch = max_batch
        self.created = int(time.time())
        self.gen: Any = None
        self.scheduler: Scheduler | None = None
        self.load_error: str | None = None

    def ready(self, gen: Any) -> None:
        self.scheduler = Scheduler(gen, self.max_batch).start()
        self.gen = gen

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()

    def require(self, model: str | None) -> tuple[Any, Scheduler]:
        if self.gen is None or self.scheduler is None:
            raise ApiError(503, "the model is still loading; retry shortly", "unavailable_error")
        if model is not None and model != self.model_name:
            raise ApiError(
                404,
                f"the model {model!r} does not exist; this server serves {self.model_name!r} "
                "(see GET /v1/models)",
                param="model",
                code="model_not_found",
            )
        return self.gen, self.scheduler


@dataclass
class _Choice:
    """What a non-streaming response keeps of one choice's events."""

    logprobs: list[TokenLogprobs] = field(default_factory=list)
    finish: FinishEvent | None = None


class _Sink(Protocol):
    """Where the relay delivers a request's events on the loop (an _Inbox; a Queue in tests)."""

    def put_nowait(self, ev: Event) -> None: ...


class _Relay:
    """Events from the scheduler thread to the event loop's queues.

    Why not `call_soon_threadsafe` per event: each call writes to the loop's wake-up pipe and
    schedules one callback, so eight streaming clients cost eight system calls and eight
    callbacks per decode step. Here events collect in a list and the loop is woken only when
    the list was empty: one wake-up drains everything that arrived meanwhile (usually a whole
    step's worth), in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[_Sink, Event]] = []

    def put(self, sink: _Sink, ev: Event) -> None:
        """Called on the scheduler thread."""
        with self._lock:
            self._pending.append((sink, ev))
            if len(self._pending) > 1:
                return  # a drain is already scheduled and will take this one too
        # a closed loop (the server shut down) raises RuntimeError: nobody listens then
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for queue, ev in pending:
            queue.put_nowait(ev)


_relays: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Relay] = weakref.WeakKeyDictionary()


def _relay() -> _Relay:
    loop = asyncio.get_running_loop()
    relay = _relays.get(loop)
    if relay is None:
        relay = _relays[loop] = _Relay(loop)
    return relay


class _Inbox:
    """One request's events on the event loop: those that have arrived, and one waiter.

    Why not an asyncio.Queue read through `wait_for`: every wake-up then made a task and a
    timer, once per token of a streaming client. Here a wake-up resolves one future, and a
    reader takes everything that has arrived at once."""

    def __init__(self) -> None:
        self._items: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, ev: Event) -> None:
        """Called on the event loop (by the relay)."""
        self._items.append(ev)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def take(self, timeout: float | None = None) -> list[Event]:
        """Everything that has arrived; waits for at least one event (for `timeout` seconds
        at most: then the list is empty)."""
        if not self._items:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        items, self._items = self._items, []
        return items


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Run:
    """The jobs of one request and the inbox their events arrive in."""

    def __init__(self, scheduler: Scheduler, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.inbox = _Inbox()
        relay, inbox = _relay(), self.inbox

        def sink(ev: Event) -> None:
            relay.put(inbox, ev)

        for job in jobs:
            job.sink = sink
        for job in jobs:
            scheduler.submit(job)

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel.set()

    async def batches(self, request: Request | None = None) -> AsyncIterator[list[Event]]:
        """Every event until each job has finished, in lists of what has arrived (a stream
        writes them in one go); with `request`, cancel the jobs when the client leaves (a
        stream needs no polling: Starlette closes its generator when the client goes)."""
        left = len(self.jobs)
        checked = time.monotonic()
        while left:
            if request is not None and time.monotonic() - checked >= DISCONNECT_POLL:
                checked = time.monotonic()
                if await request.is_disconnected():
                    self.cancel()
                    request = None  # the FinishEvents still come; wait for them
            got = await self.inbox.take(DISCONNECT_POLL if request is not None else None)
            if not got:
                continue
            left -= sum(isinstance(ev, FinishEvent) for ev in got)
            yield got

    async def events(self, request: Request | None = None) -> AsyncIterator[Event]:
        async for got in self.batches(request):
            for ev in got:
                yield ev


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _type_tag(part: str) -> bool:
    return part in _TYPE_TAGS or "[" in part or part.endswith("-after") or "function" in part


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def create_app(state: ServerState) -> FastAPI:
    """The ASGI app over `state` (which may still be loading)."""
    app = FastAPI(title="tui-gen", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tui_gen = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.type, e.param, e.code), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        err = e.errors()[0] if e.errors() else {}
        # a union's branch shows up in the location ("stop", "str"): keep the field's path
        loc = [str(x) for x in err.get("loc", ()) if x != "body" and not _type_tag(str(x))]
        param = ".".join(loc) or None
        msg = err.get("msg", "invalid request")
        text = f"{param}: {msg}" if param else f"the request body is not valid: {msg}"
        return JSONResponse(error_body(text, param=param, code="invalid_value"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        msg = f"{request.method} {request.url.path}: {e.detail}"
        return JSONResponse(error_body(msg, kind), status_code=e.status_code)

    @app.exception_handler(TuiGenError)
    async def _user_error(request: Request, e: TuiGenError) -> JSONResponse:
        return JSONResponse(error_body(str(e)), status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        msg = f"internal error ({type(e).__name__}); this is a bug in tui-gen, please report it"
        return JSONResponse(error_body(msg, "server_error"), status_code=500)

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.load_error:
            return JSONResponse({"status": "error", "error": state.load_error}, status_code=503)
        if state.gen is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [
            {
                "id": state.model_name,
                "object": "model",
                "created": state.created,
                "owned_by": "tui-gen",
                **({"max_model_len": state.gen.max_context} if state.gen is not None else {}),
            }
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatCompletionRequest, request: Request) -> Any:
        gen, scheduler = state.require(req.model)
        ids, extra_stops = await run_in_threadpool(chat_prompt, gen, req)
        base = sampling_params(req, gen.defaults, len(ids), gen.max_context)
        if extra_stops:
            base = base.replace(stop_strings=[*base.stop_strings, *extra_stops])
        specs = [(ids, base.replace(seed=choice_seed(base.seed, i))) for i in range(req.n)]
        bias = logit_bias(req, gen.config.vocab_size)
        return await _respond(
            request, req, scheduler, specs, chat=True, model=state.model_name, bias=bias
        )

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request) -> Any:
        gen, scheduler = state.require(req.model)
        prompts = await run_in_threadpool(completion_prompts, gen, req)
        specs = []
        for ids in prompts:
            base = sampling_params(req, gen.defaults, len(ids), gen.max_context)
            specs += [(ids, base.replace(seed=choice_seed(base.seed, i))) for i in range(req.n)]
        bias = logit_bias(req, gen.config.vocab_size)
        return await _respond(
            request, req, scheduler, specs, chat=False, model=state.model_name, bias=bias
        )

    app.add_middleware(AuthAndLog, state=state)
    return app


async def _respond(
    request: Request,
    req: ChatCompletionRequest | CompletionRequest,
    scheduler: Scheduler,
    specs: list[tuple[list[int], Any]],
    *,
    chat: bool,
    model: str,
    bias: dict[int, float] | None = None,
) -> Any:
    """Start the jobs; answer with one JSON object or a stream of chunks."""
    jobs = [
        Job(ids, p, _no_sink, ignore_eos=req.ignore_eos, index=i, logit_bias=bias)
        for i, (ids, p) in enumerate(specs)
    ]
    run = _Run(scheduler, jobs)
    prompt_tokens = sum(len(ids) for ids, _ in specs[:: req.n])
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    top = requested_top(req)
    request.state.tokens = 0
    if req.stream:
        usage = req.stream_options is not None and req.stream_options.include_usage
        gen = _stream(request, run, rid, created, model, chat, top, usage, prompt_tokens)
        # no-cache and no proxy buffering: every chunk reaches the client when it is written
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(gen, media_type="text/event-stream", headers=headers)
    return await _collect(request, run, rid, created, model, chat, top, prompt_tokens)


def _no_sink(ev: Event) -> None:  # replaced by _Run before the job is submitted
    raise AssertionError("a job was submitted without its sink")


def _error_of(run: _Run, index: int) -> ApiError | None:
    e = run.jobs[index].error
    if e is None:
        return None
    if isinstance(e, TuiGenError):
        return ApiError(400, str(e))
    return ApiError(500, f"generation failed ({type(e).__name__}: {e})", "server_error")


async def _collect(
    request: Request,
    run: _Run,
    rid: str,
    created: int,
    model: str,
    chat: bool,
    top: int,
    prompt_tokens: int,
) -> JSONResponse:
    choices = [_Choice() for _ in run.jobs]
    try:
        async for ev in run.events(request):
            c = choices[ev.index] if isinstance(ev, (TokenEvent, FinishEvent)) else None
            if isinstance(ev, TokenEvent) and c is not None and ev.logprobs is not None:
                c.logprobs.append(ev.logprobs)
            elif isinstance(ev, FinishEvent) and c is not None:
                c.finish = ev
    finally:
        run.cancel()  # a no-op for finished jobs
    for i in range(len(run.jobs)):
        err = _error_of(run, i)
        if err is not None:
            raise err
    completion = sum(len(c.finish.token_ids) for c in choices if c.finish)
    request.state.tokens = completion
    want_lp = run.jobs[0].params.logprobs > 0
    out = []
    for i, c in enumerate(choices):
        assert c.finish is not None
        text = c.finish.text
        if chat:
            lp = chat_logprobs(c.logprobs, top) if want_lp else None
            msg = {"role": "assistant", "content": text}
            out.append(
                {
                    "index": i,
                    "message": msg,
                    "logprobs": lp,
                    "finish_reason": finish_reason(c.finish.reason),
                }
            )
        else:
            lp = completion_logprobs(c.logprobs, top) if want_lp else None
            out.append(
                {
                    "index": i,
                    "text": text,
                    "logprobs": lp,
                    "finish_reason": finish_reason(c.finish.reason),
                }
            )
    body = {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": out,
        "usage": _usage(prompt_tokens, completion),
        "system_fingerprint": None,
    }
    return JSONResponse(body)


async def _stream(
    request: Request,
    run: _Run,
    rid: str,
    created: int,
    model: str,
    chat: bool,
    top: int,
    include_usage: bool,
    prompt_tokens: int,
) -> AsyncIterator[str]:
    """Server-sent events: chunks with the same id, one finish_reason per choice, an optional
    usage chunk with no choices, then [DONE]."""
    out_of = Chunks(rid, created, model, chat, top, include_usage)
    completion = 0
    try:
        if chat:
            for i in range(len(run.jobs)):
                yield out_of.chunk(i, None, [], None, role=True)
        async for got in run.batches():
            out: list[str] = []
            for ev in got:
                if isinstance(ev, TokenEvent):
                    if ev.logprobs is not None:
                        out.append(out_of.chunk(ev.index, ev.text, [ev.logprobs], None))
                    elif ev.text:
                        out.append(out_of.piece(ev.index, ev.text))
                elif isinstance(ev, FinishEvent):
                    err = _error_of(run, ev.index)
                    if err is not None:
                        out.append(sse(error_body(err.message, err.type, err.param, err.code)))
                        continue
                    completion += len(ev.token_ids)
                    request.state.tokens = completion
                    out.append(out_of.chunk(ev.index, None, [], finish_reason(ev.reason)))
            if out:
                yield "".join(out)
        if include_usage:
            yield out_of.usage(_usage(prompt_tokens, completion))
        yield DONE
    finally:
        run.cancel()  # the client left (or the stream ended): stop every row of this request
