"""A GGUF control vector in llama.cpp itself, against the workbench's hooks at the same positions.

llama.cpp (the cached library, `steering.llamacpp`) runs the model's GGUF with
and without the vector, at "all" positions (what `--control-vector` does) or at
"generated" ones (`steering.llamacpp.steered`: prompt[:-1] unsteered, then the
vector). The HF model steered by the workbench's own `steer` at the same
positions is the reference. Texts: the fixed prompts of `compare`, and for
"generated" each prompt followed by HF's unsteered greedy continuation
(CONTINUATION tokens), so many positions are steered.

What is measured (quantised llama.cpp against dequantised float32 HF, so never exact):

- baseline: llama.cpp unsteered vs HF unsteered: the quantisation noise (KL, top-1 agreement);
- steered: llama.cpp steered vs HF steered; at the steered tokens its KL must stay within KL_FACTOR x the
  baseline's KL at the same tokens + KL_SLACK + EFFECT_SLACK x the steering effect (a vector that moves the
  model far moves it where the quantised weights err more: measured, 0.014 against 0.0056 for an effect of
  0.67), and its top-1 agreement within TOP1_SLACK of the baseline's;
- shift correlation: of the log-probability shifts (steered - unsteered) of the two runtimes at the steered positions;
- convention check: at a strength amplified until the HF effect reaches CHECK_KL (at least 1x; the
  layer and sign convention is linear in strength), llama.cpp must be closer to the reference than to
  each wrong hypothesis, on the tokens where the two differ: the layers shifted by -1 or +1, the sign
  flipped, no vector, another positions rule. Quantisation noise (activations are rounded to 8 bits inside
  llama.cpp's matmuls) swamps the difference between these hypotheses for a weak vector; amplified, they
  are far apart. A hypothesis closer to the reference than DISTINCT x the noise (a one-layer shift of a
  vector that is the same at every layer) would change nothing measurable: it is reported, not judged.

Example:
    >>> result = check_in_llama_cpp(model, gguf, file_vector, positions="generated")  # doctest: +SKIP
    >>> result.problems, result.steered.mean_kl, result.baseline.mean_kl  # doctest: +SKIP
    ([], 0.0061, 0.0057)
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.models.loading import ChatModel
from interp.tasks.example import Turn
from steering.apply.generation import greedy_stream, stop_tokens
from steering.apply.spec import SteerSpec
from steering.artifacts.steering_vector import SteeringVector
from steering.export.compare import PROMPTS, Agreement, agreement, log_softmax, mean_kl, prompt_ids
from steering.llamacpp.runtime import ControlVector, LlamaContext, LlamaModel
from steering.llamacpp.steered import POSITIONS, score, spans, steered_span

CONTINUATION = 8  # answer tokens scored after each prompt for positions "generated"
KL_FACTOR, KL_SLACK = 2.0, 0.002  # steered KL(HF || llama.cpp) <= KL_FACTOR * baseline KL + KL_SLACK + ...
EFFECT_SLACK = 0.05  # ... + EFFECT_SLACK * KL(HF unsteered || HF steered), all at the steered tokens
TOP1_SLACK = 0.05  # steered top-1 agreement >= baseline top-1 agreement - TOP1_SLACK
CHECK_KL = 0.05  # the HF effect (KL from unsteered) the convention check amplifies the vector to
MAX_AMPLIFY = 50.0
DIFFER_KL = 1e-4  # positions where two hypotheses' HF logits differ by less are not used to tell them apart
DISTINCT = 2.0  # a wrong hypothesis is judged when it is this many baseline KLs away from the reference
N_THREADS = 1


def model_gguf(model: ChatModel) -> Path | None:
    """The GGUF file a model was loaded from, if it came from one."""
    source = Path(model.source)
    return source if source.suffix == ".gguf" and source.is_file() else None


@dataclass(frozen=True)
class Texts:
    """Token ids scored by both runtimes, with each one's rendered-prompt length (the positions boundary)."""

    ids: list[list[int]]
    prompt_tokens: list[int]


def verify_texts(model: ChatModel, positions: str, prompts: tuple[str, ...] = PROMPTS) -> Texts:
    """The prompts; for "generated" and "prompt" each followed by HF's unsteered greedy continuation."""
    ids = prompt_ids(model, prompts)
    lengths = [len(p) for p in ids]
    if positions == "all":
        return Texts(ids, lengths)
    stop = stop_tokens(model)
    tails: list[list[int]] = [[] for _ in ids]
    ended = [False] * len(ids)
    for step in greedy_stream(model, [[Turn("user", p)] for p in prompts], CONTINUATION):
        for r, token in enumerate(step):
            ended[r] = ended[r] or token is None or token in stop
            if not ended[r]:
                tails[r].append(int(token))  # type: ignore[arg-type]
    return Texts([p + t for p, t in zip(ids, tails, strict=True)], lengths)


@torch.no_grad()
def hf_steered(model: ChatModel, texts: Texts, vector: SteeringVector | None, positions: str,
               strength: float = 1.0) -> list[np.ndarray]:
    """HF logits `[pos, vocab]` per text, `strength * vector` added by `steer` where `positions` says.

    One right-padded forward for all texts (causal: the pads after a text never reach its positions).
    """
    width = max(map(len, texts.ids))
    pad = int(model.tokenizer.pad_token_id or 0)
    ids = torch.tensor([row + [pad] * (width - len(row)) for row in texts.ids], device=model.device)
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in texts.ids], device=model.device)
    ctx: AbstractContextManager[object] = nullcontext()
    if vector is not None:
        spec = SteerSpec(vector, tuple(vector.layers), positions, force=True)
        ctx = spec.context(model, float(strength), texts.prompt_tokens)
    with ctx:
        logits = model.hf(input_ids=ids, attention_mask=mask).logits.float().cpu().numpy()
    return [logits[k, : len(row)] for k, row in enumerate(texts.ids)]


def cpp_logits(ctx: LlamaContext, texts: Texts, vector: SteeringVector | None, positions: str,
               strength: float = 1.0) -> list[np.ndarray]:
    """llama.cpp logits `[pos, vocab]` per text, `strength * vector` as the control vector where `positions` says."""
    cvec = None if vector is None else ControlVector.of(vector, strength, ctx.model.n_layers)
    return [score(ctx, ids, cvec, positions, n) for ids, n in zip(texts.ids, texts.prompt_tokens, strict=True)]


def steered_rows(texts: Texts, positions: str) -> list[np.ndarray]:
    """Per text, the indices of its steered tokens."""
    out = []
    for ids, n in zip(texts.ids, texts.prompt_tokens, strict=True):
        on = [np.arange(a, b) for a, b, steered in spans(len(ids), steered_span(positions, n)) if steered]
        out.append(np.concatenate(on) if on else np.zeros(0, dtype=int))
    return out


def differing_rows(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    """Per text, the positions where two HF runs differ (KL above DIFFER_KL): where two hypotheses can be told apart."""
    out = []
    for x, y in zip(a, b, strict=True):
        lx, ly = log_softmax(x), log_softmax(y)
        out.append(np.flatnonzero((np.exp(lx) * (lx - ly)).sum(-1) > DIFFER_KL))
    return out


def shift_correlation(hf_base: list[np.ndarray], hf_steer: list[np.ndarray], cpp_base: list[np.ndarray],
                      cpp_steer: list[np.ndarray], rows: list[np.ndarray]) -> float:
    """Pearson correlation of the two runtimes' log-probability shifts at the steered rows (all tokens)."""
    ours, theirs = [], []
    for hb, hs, cb, cs, r in zip(hf_base, hf_steer, cpp_base, cpp_steer, rows, strict=True):
        n = min(hb.shape[-1], cb.shape[-1])
        ours.append((log_softmax(hs[r, :n]) - log_softmax(hb[r, :n])).ravel())
        theirs.append((log_softmax(cs[r, :n]) - log_softmax(cb[r, :n])).ravel())
    a, b = np.concatenate(ours), np.concatenate(theirs)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def wrong_hypotheses(vector: SteeringVector, positions: str, n_layers: int) -> dict[str, tuple[SteeringVector | None, str]]:
    """What a broken deployment might add instead: (vector, positions) per name."""
    out: dict[str, tuple[SteeringVector | None, str]] = {}
    for shift in (-1, 1):
        moved = {layer + shift: d for layer, d in vector.directions.items() if 0 <= layer + shift < n_layers}
        if moved:
            out[f"layers {shift:+d}"] = (replace(vector, directions=moved), positions)
    out["sign flipped"] = (vector * -1.0, positions)
    out["no vector"] = (None, positions)
    for other in POSITIONS:
        if other != positions:
            out[f"positions {other}"] = (vector, other)
    return out


@dataclass(frozen=True)
class Hypothesis:
    """One wrong hypothesis in the convention check, at the positions where it differs from the reference.

    Args:
        tokens: positions where its HF logits differ from the reference's (KL > DIFFER_KL).
        kl_between: mean KL(HF reference || HF hypothesis) there: how far apart the two are.
        kl_reference: mean KL(HF reference || llama.cpp) there.
        kl_hypothesis: mean KL(HF hypothesis || llama.cpp) there; must exceed kl_reference when judged.
        judged: whether the two are further apart than the quantisation noise (kl_between >= DISTINCT x the
            baseline KL); a hypothesis that close to the reference (e.g. a one-layer shift of a vector that is
            the same at every layer) changes nothing llama.cpp could show, and is reported, not judged.
    """

    tokens: int
    kl_between: float
    kl_reference: float
    kl_hypothesis: float
    judged: bool


@dataclass
class LlamaCppResult:
    """What llama.cpp did with the vector, next to the HF hooks; `problems` empty when it passed."""

    positions: str
    tokens: int
    steered_tokens: int
    baseline: Agreement
    steered: Agreement
    baseline_kl_steered_tokens: float
    steered_kl_steered_tokens: float
    kl_from_unsteered_hf: float
    kl_from_unsteered_llama_cpp: float
    shift_correlation: float
    check_strength: float
    check_shift_correlation: float
    check: dict[str, Hypothesis] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tolerance"] = {"kl_factor": KL_FACTOR, "kl_slack": KL_SLACK, "effect_slack": EFFECT_SLACK,
                            "top1_slack": TOP1_SLACK,
                            "check_kl": CHECK_KL, "differ_kl": DIFFER_KL, "distinct": DISTINCT}
        return out


def _judge(r: LlamaCppResult) -> None:
    limit = KL_FACTOR * r.baseline_kl_steered_tokens + KL_SLACK + EFFECT_SLACK * r.kl_from_unsteered_hf
    if not r.steered_kl_steered_tokens <= limit:
        r.problems.append(
            f"llama.cpp steered vs HF hooks: KL {r.steered_kl_steered_tokens:.4g} at the steered tokens exceeds "
            f"{limit:.4g} ({KL_FACTOR} x the unsteered baseline's {r.baseline_kl_steered_tokens:.4g} + {KL_SLACK} "
            f"+ {EFFECT_SLACK} x the effect {r.kl_from_unsteered_hf:.4g})")
    if r.steered.top1_agreement < r.baseline.top1_agreement - TOP1_SLACK:
        r.problems.append(f"llama.cpp steered top-1 agreement {r.steered.top1_agreement:.3f} is more than "
                          f"{TOP1_SLACK} below the unsteered baseline {r.baseline.top1_agreement:.3f}")
    for name, h in r.check.items():
        if h.judged and not h.kl_reference < h.kl_hypothesis:
            r.problems.append(f"at {r.check_strength:.3g}x strength llama.cpp is closer to '{name}' (KL "
                              f"{h.kl_hypothesis:.4g}) than to the reference (KL {h.kl_reference:.4g}) on the "
                              f"{h.tokens} tokens where they differ: a wrong layer, sign or positions convention")


def check_in_llama_cpp(model: ChatModel, gguf_model: Path, vector: SteeringVector, positions: str,
                       llama_vector: SteeringVector | None = None, prompts: tuple[str, ...] | None = None,
                       ) -> LlamaCppResult:
    """Run llama.cpp on `gguf_model` with `vector` as its control vector at `positions`; compare with HF hooks.

    Args:
        model: the HF model (the reference), loaded from `gguf_model`.
        gguf_model: the model's GGUF file.
        vector: what is added (strength folded in), as the workbench reads the export.
        positions: "all", "prompt" or "generated".
        llama_vector: what llama.cpp is given instead of `vector` (tests: a deliberately broken one).
        prompts: the user turns scored (default: PROMPTS, `compare`'s fixed set).

    Example:
        >>> check_in_llama_cpp(model, gguf, read_gguf_control_vector("v.gguf"), "generated").problems  # doctest: +SKIP
        []
    """
    if positions not in POSITIONS:
        raise ValueError(f"unknown positions {positions!r}: choose one of {', '.join(POSITIONS)}")
    given = vector if llama_vector is None else llama_vector
    texts = verify_texts(model, positions, PROMPTS if prompts is None else prompts)
    rows = steered_rows(texts, positions)
    hf_base, hf_ref = hf_steered(model, texts, None, positions), hf_steered(model, texts, vector, positions)
    effect = mean_kl(hf_base, hf_ref, rows)
    amplify = min(max(math.sqrt(CHECK_KL / effect), 1.0), MAX_AMPLIFY) if effect > 0 else MAX_AMPLIFY
    with LlamaModel(gguf_model) as lm, LlamaContext(lm, n_ctx=max(map(len, texts.ids)) + 8,
                                                    n_threads=N_THREADS) as ctx:
        cpp_base, cpp_ref = cpp_logits(ctx, texts, None, positions), cpp_logits(ctx, texts, given, positions)
        cpp_check = cpp_logits(ctx, texts, given, positions, amplify)
    hf_check = hf_steered(model, texts, vector, positions, amplify)
    baseline = agreement(hf_base, cpp_base)
    check = {}
    for name, (alt, alt_positions) in wrong_hypotheses(vector, positions, model.n_layers).items():
        hf_alt = hf_steered(model, texts, alt, alt_positions, amplify)
        where = differing_rows(hf_check, hf_alt)
        between = mean_kl(hf_check, hf_alt, where)
        check[name] = Hypothesis(sum(map(len, where)), between, mean_kl(hf_check, cpp_check, where),
                                 mean_kl(hf_alt, cpp_check, where), between >= DISTINCT * baseline.mean_kl)
    result = LlamaCppResult(
        positions, sum(map(len, texts.ids)), sum(map(len, rows)), baseline,
        agreement(hf_ref, cpp_ref), mean_kl(hf_base, cpp_base, rows), mean_kl(hf_ref, cpp_ref, rows), effect,
        mean_kl(cpp_base, cpp_ref, rows),
        shift_correlation(hf_base, hf_ref, cpp_base, cpp_ref, rows), amplify,
        shift_correlation(hf_base, hf_check, cpp_base, cpp_check, rows), check)
    _judge(result)
    return result
