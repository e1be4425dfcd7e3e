"""The served model, its vectors and limits, and request validation, shared by every decoding backend.

`Engine.prepare` does every check a request can fail (messages, context
length, max tokens, vector, gate, layers, strength) before the request is
queued, so a bad request is answered alone with a 4xx and a backend
(`steering.serve.backend`) only ever sees valid rows. Decoding itself is the
scheduler's and the backend's (`steering.serve.scheduler`, `.torch_backend`).

Example:
    >>> engine = Engine(model, registry, ServeLimits(), name="smollm2")  # doctest: +SKIP
    >>> prepared = engine.prepare(request)  # doctest: +SKIP
    >>> len(prepared.token_ids), prepared.row is None  # doctest: +SKIP
    (57, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interp.tasks.example import Turn
from steering.apply.generation import stop_tokens
from steering.apply.rows import row_plan
from steering.apply.spec import SteerSpec
from steering.serve.registry import VectorRegistry
from steering.serve.schema import ApiError, ChatRequest, SteeringRequest

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class ServeLimits:
    """Server limits.

    Args:
        max_tokens: most tokens one request may generate (also the default when it asks for none).
        max_batch: most requests decoded together (rows of the running batch).
        max_queue: most requests waiting for a row; one more is answered 503 with Retry-After.
        timeout_s: a request still running this many seconds after it arrived is ended with a 504
            (None: no limit).
    """

    max_tokens: int = 256
    max_batch: int = 16
    max_queue: int = 64
    timeout_s: float | None = 300.0

    def __post_init__(self) -> None:
        if min(self.max_tokens, self.max_batch, self.max_queue) < 1:
            raise ValueError(f"--max-tokens, --max-batch and --max-queue must be >= 1, got {self}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"--timeout must be > 0 seconds, got {self.timeout_s}")


@dataclass(frozen=True, eq=False)
class Prepared:
    """A validated request: its prompt tokens, its steering row (None: unsteered) and its token budget."""

    token_ids: tuple[int, ...]
    row: SteerSpec | None
    max_tokens: int
    steering: dict[str, Any] | None  # what the response reports about the steering applied
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks; vLLM's extension)
    strength: float = 0.0  # the row's strength (with `row`)


class Engine:
    """The served model, its registry and limits; validates requests.

    Args:
        model: the served model.
        registry: its vectors and gates.
        limits: the server's limits.
        name: the model id clients send and `/v1/models` lists.
    """

    def __init__(self, model: ChatModel, registry: VectorRegistry, limits: ServeLimits, name: str) -> None:
        self.model = model
        self.registry = registry
        self.limits = limits
        self.name = name
        self.context = int(getattr(model.hf.config, "max_position_embeddings", 0) or 1 << 30)
        self.stop = stop_tokens(model)
        # what the decoding backend cannot apply (a reason, or None): set by a backend with limits (llama.cpp)
        self.refuse: Callable[[SteerSpec], str | None] | None = None

    def shared_prefix(self) -> tuple[int, ...]:
        """The tokens every single-user-turn prompt starts with: the template's default system turn (if any)
        and the user header. A backend may prefill them once (`TorchBackend`); a prompt that does not start
        with them is prefilled whole.

        Example:
            >>> engine.shared_prefix()  # doctest: +SKIP
            (1, 9690, 198, 2683, 359, 253, 5356, ...)
        """
        tok = self.model.tokenizer
        a, b = ([int(t) for t in tok(self.model.render([Turn("user", text)]), add_special_tokens=False)["input_ids"]]
                for text in ("x", "?"))
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return tuple(a[:n])

    def prepare(self, request: ChatRequest) -> Prepared:
        """Every check a request can fail, before it joins a batch.

        Raises:
            ApiError: 404 for an unknown model, vector or gate; 400 for a prompt past the context or
                too many tokens asked; 422 for a bad layer or steering the model refuses.
        """
        if request.model != self.name:
            raise ApiError(404, f"model {request.model!r} is not served here (this server serves {self.name!r})",
                           param="model", code="model_not_found")
        asked = request.max_completion_tokens or request.max_tokens
        if asked is not None and asked > self.limits.max_tokens:
            raise ApiError(400, f"max_tokens {asked} is over this server's limit {self.limits.max_tokens}",
                           param="max_tokens", code="invalid_value")
        max_tokens = asked or self.limits.max_tokens
        turns = [Turn(m.role, m.content) for m in request.messages]
        text = self.model.render(turns)
        ids = tuple(int(t) for t in self.model.tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) + max_tokens > self.context:
            raise ApiError(400, f"the prompt has {len(ids)} tokens and {max_tokens} more were asked for, past the "
                           f"model's context of {self.context} tokens", param="messages",
                           code="context_length_exceeded")
        if request.steering is None:
            return Prepared(ids, None, max_tokens, None, request.ignore_eos)
        row, strength, info = self._row(request.steering, len(ids))
        return Prepared(ids, row, max_tokens, info, request.ignore_eos, strength)

    def _row(self, s: SteeringRequest, prompt_tokens: int) -> tuple[SteerSpec, float, dict[str, Any]]:
        served = self.registry.vectors.get(s.vector)
        if served is None:
            known = ", ".join(self.registry.vectors) or "none"
            raise ApiError(404, f"no steering vector {s.vector!r} (loaded: {known})", param="steering.steering_vector",
                           code="vector_not_found")
        gate = None
        if s.gate is not None:
            if s.gate not in self.registry.gates:
                known = ", ".join(self.registry.gates) or "none"
                raise ApiError(404, f"no gate {s.gate!r} (loaded: {known})", param="steering.probe_gate",
                               code="gate_not_found")
            gate = self.registry.gates[s.gate].gate
        layers = tuple(s.layers) if s.layers else tuple(served.info.layers)
        n_layers = self.model.n_layers
        for layer in layers:
            real = layer + n_layers if layer < 0 else layer
            if not 0 <= real < n_layers:
                raise ApiError(422, f"layer {layer} is outside the model's layers 0..{n_layers - 1}",
                               param="steering.layers", code="invalid_value")
            if real not in served.vector.directions:
                raise ApiError(422, f"vector {s.vector!r} has no layer {layer} (it has {served.vector.layers})",
                               param="steering.layers", code="invalid_value")
        strength = served.info.strength if s.strength is None else float(s.strength)
        positions = s.positions or served.info.positions
        row = SteerSpec(served.vector, layers, positions, served.info.mode, gate=gate)
        try:
            row_plan(self.model, row, strength, prompt_tokens)
        except ValueError as e:
            raise ApiError(422, str(e), param="steering", code="invalid_value") from None
        problem = self.refuse(row) if self.refuse is not None else None
        if problem is not None:
            raise ApiError(422, problem, param="steering", code="unsupported_by_engine")
        info = {"vector": s.vector, "strength": strength, "layers": list(layers), "positions": positions,
                "mode": served.info.mode, "gate": s.gate}
        return row, strength, info
