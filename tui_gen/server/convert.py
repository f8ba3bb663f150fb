"""OpenAI request fields -> the engine's values, and engine events -> OpenAI's response pieces.

One rule for values: every sampling field is checked by tui_gen.options.check_value under its
Hugging Face name, and a refusal is reported under the request's own field name (a 400 with
`param` set). Values the model's generation_config.json sets are the defaults, as in vLLM.

Context: a prompt that leaves no room for one new token is a 400 `exceed_context_size_error`.
A `max_tokens` past the end of the context is not an error: the reply stops there with
finish_reason "length" (documented in the README). Without max_tokens the reply may use the
rest of the context, as OpenAI's API does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tui_gen.engine.chat import PLAIN_STOP_STRINGS, ChatSession
from tui_gen.engine.events import FinishReason, TokenLogprobs
from tui_gen.options import SEED_LIMIT, InvalidParameterError, SamplingParams, check_value
from tui_gen.server.schemas import ChatCompletionRequest, CompletionRequest, _Sampling

#: the most choices one request may ask for (each is a row of the batch)
MAX_N = 64


class ApiError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type_,
            param,
            code,
        )


def _check(api_name: str, hf_name: str, value: Any) -> Any:
    try:
        return check_value(hf_name, value)
    except InvalidParameterError as e:
        msg = str(e).replace(hf_name, api_name, 1)
        raise ApiError(400, msg, param=api_name, code="invalid_value") from None


def sampling_params(
    req: _Sampling, defaults: SamplingParams, prompt_tokens: int, max_context: int
) -> SamplingParams:
    """The SamplingParams of one choice (the caller varies the seed per choice)."""
    if prompt_tokens >= max_context:
        raise ApiError(
            400,
            f"the prompt has {prompt_tokens} tokens but the model's context holds "
            f"{max_context} (prompt and reply together); shorten the prompt",
            type_="exceed_context_size_error",
            param="messages" if isinstance(req, ChatCompletionRequest) else "prompt",
            code="context_length_exceeded",
        )
    if not 1 <= req.n <= MAX_N:
        raise ApiError(400, f"n must be an integer from 1 to {MAX_N}; got {req.n}", param="n")
    for name in ("presence_penalty", "frequency_penalty"):
        v = getattr(req, name)
        if v not in (None, 0, 0.0):
            raise ApiError(
                400,
                f"{name} is not supported (only 0); use repetition_penalty instead",
                param=name,
            )
    values: dict[str, Any] = {}
    room = max_context - prompt_tokens
    max_tokens = req.max_tokens
    api_max = "max_tokens"
    if isinstance(req, ChatCompletionRequest) and req.max_completion_tokens is not None:
        max_tokens, api_max = req.max_completion_tokens, "max_completion_tokens"
    if max_tokens is not None:
        values["max_new_tokens"] = min(_check(api_max, "max_new_tokens", max_tokens), room)
    else:
        values["max_new_tokens"] = room
    top_k = 0 if req.top_k == -1 else req.top_k  # vLLM's -1 = off is our 0
    for api, hf, v in (
        ("temperature", "temperature", req.temperature),
        ("top_p", "top_p", req.top_p),
        ("top_k", "top_k", top_k),
        ("min_p", "min_p", req.min_p),
        ("repetition_penalty", "repetition_penalty", req.repetition_penalty),
        ("seed", "seed", req.seed),
    ):
        if v is not None:
            values[hf] = _check(api, hf, v)
    if req.temperature is not None:  # an explicit temperature decides greedy or not
        values["do_sample"] = req.temperature > 0
    if req.stop is not None:
        stops = _check("stop", "stop_strings", req.stop)
        if len(stops) > 16:
            raise ApiError(400, "stop may hold at most 16 strings", param="stop")
        values["stop_strings"] = stops
    values["logprobs"] = engine_logprobs(req)
    try:
        return defaults.replace(**values).validate()
    except InvalidParameterError as e:  # pragma: no cover - every value was checked above
        raise ApiError(400, str(e)) from None


#: OpenAI's limits: at most 300 entries, each bias from -100 (bans) to 100 (forces)
MAX_LOGIT_BIAS = 300


def logit_bias(req: _Sampling, vocab_size: int) -> dict[int, float] | None:
    """The request's logit_bias as {token id: bias}, checked as OpenAI checks it."""
    if not req.logit_bias:
        return None
    if len(req.logit_bias) > MAX_LOGIT_BIAS:
        raise ApiError(
            400, f"logit_bias may hold at most {MAX_LOGIT_BIAS} tokens", param="logit_bias"
        )
    bias: dict[int, float] = {}
    for key, value in req.logit_bias.items():
        try:
            tok = int(key)
        except ValueError:
            tok = -1
        if not 0 <= tok < vocab_size:
            raise ApiError(
                400,
                f"logit_bias key {key!r} is not a token id of this model (0..{vocab_size - 1})",
                param="logit_bias",
            )
        if not -100 <= value <= 100:  # also refuses NaN
            raise ApiError(
                400, f"logit_bias values must be from -100 to 100; got {value}", param="logit_bias"
            )
        bias[tok] = float(value)
    return bias


def engine_logprobs(req: _Sampling) -> int:
    """SamplingParams.logprobs for the request: the alternatives asked for, at least 1 (the
    chosen token's own log-probability needs the distribution too), 0 when not asked."""
    if isinstance(req, ChatCompletionRequest):
        top = req.top_logprobs
        if top is not None:
            _check("top_logprobs", "logprobs", top)
            if not req.logprobs:
                raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        return max(1, top or 0) if req.logprobs else 0
    assert isinstance(req, CompletionRequest)
    if req.logprobs is None:
        return 0
    return max(1, _check("logprobs", "logprobs", req.logprobs))


def requested_top(req: _Sampling) -> int:
    """How many alternatives the response lists per token."""
    if isinstance(req, ChatCompletionRequest):
        return req.top_logprobs or 0
    assert isinstance(req, CompletionRequest)
    return req.logprobs or 0


def choice_seed(seed: int | None, i: int) -> int | None:
    """Choice i of a seeded request samples with seed + i: reproducible, and not n copies."""
    return None if seed is None else (seed + i) % SEED_LIMIT


def chat_prompt(gen: Any, req: ChatCompletionRequest) -> tuple[list[int], list[str]]:
    """Token ids of the conversation through the model's chat template, and the stop strings
    the plain format adds for a model without one (engine/chat.py)."""
    messages = []
    for i, m in enumerate(req.messages):
        content = m.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.type != "text" or part.text is None:
                    raise ApiError(
                        400,
                        f"messages[{i}]: content parts of type {part.type!r} are not "
                        "supported; this model reads text only",
                        param=f"messages[{i}].content",
                    )
                texts.append(part.text)
            content = "".join(texts)
        role = "system" if m.role == "developer" else m.role
        messages.append({"role": role, "content": content or ""})
    session = ChatSession(gen)
    text = session.render(messages, system=None)
    ids = gen.encode(text, add_special_tokens=not session.has_template)
    return ids, [] if session.has_template else list(PLAIN_STOP_STRINGS)


def completion_prompts(gen: Any, req: CompletionRequest) -> list[list[int]]:
    """Token ids of every prompt of a completion request (text gets the tokenizer's BOS)."""
    p = req.prompt
    if req.echo:
        raise ApiError(400, "echo is not supported; leave it false", param="echo")
    if req.suffix:
        raise ApiError(400, "suffix is not supported", param="suffix")
    if req.best_of not in (None, req.n):
        raise ApiError(400, "best_of is not supported (only equal to n)", param="best_of")
    if isinstance(p, str):
        prompts: list[list[int]] = [gen.encode(p)]
    elif p and all(isinstance(x, str) for x in p):
        prompts = [gen.encode(str(x)) for x in p]
    elif p and all(isinstance(x, int) for x in p):
        prompts = [[int(x) for x in p]]  # type: ignore[arg-type]
    elif p and all(isinstance(x, list) for x in p):
        prompts = [list(x) for x in p]  # type: ignore[arg-type]
    else:
        raise ApiError(400, "prompt must be a non-empty string or list", param="prompt")
    vocab = gen.config.vocab_size
    for ids in prompts:
        bad = [t for t in ids if not 0 <= t < vocab]
        if bad:
            raise ApiError(
                400,
                f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})",
                param="prompt",
            )
        if not ids:
            ids.extend(gen._start_ids())
    return prompts


def finish_reason(reason: FinishReason) -> str:
    """OpenAI's finish_reason: "stop" (EOS or a stop string) or "length"."""
    return "length" if reason == "length" else "stop"


def _token_entry(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_logprobs(items: Sequence[TokenLogprobs], top: int) -> dict[str, Any]:
    """A chat choice's `logprobs`: {"content": [{token, logprob, bytes, top_logprobs}]},
    from the raw distribution (the model's, before the samplers; events.TokenLogprobs)."""
    return {
        "content": [
            {
                **_token_entry(lp.text, lp.logprob),
                "top_logprobs": [_token_entry(a.text, a.logprob) for a in lp.top[:top]],
            }
            for lp in items
        ],
        "refusal": None,
    }


def completion_logprobs(
    items: Sequence[TokenLogprobs], top: int, offset: int = 0
) -> dict[str, Any]:
    """A text completion choice's legacy `logprobs`: parallel lists and one dict per token."""
    offsets = []
    for lp in items:
        offsets.append(offset)
        offset += len(lp.text)
    return {
        "tokens": [lp.text for lp in items],
        "token_logprobs": [lp.logprob for lp in items],
        "top_logprobs": [{a.text: a.logprob for a in lp.top[:top]} for lp in items],
        "text_offset": offsets,
    }
