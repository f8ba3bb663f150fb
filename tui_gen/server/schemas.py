"""The OpenAI HTTP API's request and response shapes, as pydantic models.

Requests: the fields OpenAI documents for /v1/chat/completions and /v1/completions, plus the
extensions vLLM and llama.cpp's server accept (top_k, min_p, repetition_penalty, ignore_eos).
Fields this server does not know are ignored, as vLLM and llama.cpp do (clients send `user`,
`metadata` and the like); a known field with a value of the wrong type is a 400 naming it.
Ranges are not checked here but by tui_gen.options (the one rule for values), see convert.py.

Responses are plain dicts built by convert.py in exactly OpenAI's shapes: chat.completion,
chat.completion.chunk, text_completion, list of models, and the error object.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Request):
    type: str
    text: str | None = None


class ChatMessageIn(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class StreamOptions(_Request):
    include_usage: bool = False


class _Sampling(_Request):
    """The fields both endpoints share."""

    #: None (left out) means the served model, as vLLM and llama.cpp allow
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    #: token id (as a string, OpenAI's shape) -> bias added to its logit (convert.logit_bias)
    logit_bias: dict[str, float] | None = None
    # extensions (vLLM, llama.cpp)
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None


def error_body(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error object: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
