"""The request body of `POST /v1/chat/completions` (OpenAI's, plus `steering`), and OpenAI-style errors.

Only what the server honours is accepted with a meaning: greedy decoding
(`temperature` absent or 0, `n` 1), and vLLM's `ignore_eos` extension
(generate `max_tokens` whatever the model says). Other OpenAI fields are ignored, as
OpenAI-compatible servers do; the `steering` object itself accepts no unknown
field, so a typo there is an error rather than a silently unsteered answer.

Example:
    >>> body = {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}],
    ...         "steering": {"vector": "caa-l14", "strength": -4, "positions": "generated"}}
    >>> ChatRequest.model_validate(body).steering.strength
    -4.0
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ApiError(Exception):
    """An error answered as OpenAI does: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.

    Args:
        status: HTTP status (400, 404, 422, 500, 503, 504).
        message: what is wrong and what to do.
        param: the request field at fault, dotted (e.g. "steering.strength"), if any.
        code: a short machine-readable code.
        headers: extra response headers (e.g. `Retry-After` on a 503).
    """

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class Message(BaseModel):
    """One chat turn."""

    role: Literal["system", "user", "assistant"]
    content: str


class SteeringRequest(BaseModel):
    """The `steering` field: which vector, how strong, where, behind which gate.

    Absent fields take the export's recorded values (strength, layers, positions).
    """

    model_config = ConfigDict(extra="forbid")

    vector: str
    strength: float | None = Field(default=None, allow_inf_nan=False)
    layers: list[int] | None = Field(default=None, min_length=1)
    positions: Literal["all", "prompt", "generated"] | None = None
    gate: str | None = None


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions`."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    temperature: float | None = Field(default=None, allow_inf_nan=False)
    n: int = 1
    ignore_eos: bool = False  # vLLM's extension: always generate max_tokens (for benchmarks)
    steering: SteeringRequest | None = None


def parse_request(raw: bytes) -> ChatRequest:
    """The request from a raw body; malformed JSON is a 400, a bad field a 422 naming it.

    Raises:
        ApiError: with the status and the dotted field.
    """
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        raise ApiError(422, f"{param}: {first['msg']}", param=param, code="invalid_value") from None
    if request.temperature not in (None, 0.0):
        raise ApiError(400, "this server decodes greedily: send temperature 0 or leave it out", param="temperature",
                       code="unsupported_value")
    if request.n != 1:
        raise ApiError(400, "this server returns one choice: n must be 1", param="n", code="unsupported_value")
    return request
