"""Load each export the way its target runtime does and compare it with the workbench's hooks.

| format      | runtime that loads it                         | compared with                        |
| ----------- | --------------------------------------------- | ------------------------------------ |
| safetensors | `load_native` + hooks (the workbench itself)  | the source vector through hooks      |
| gguf        | rule checks; the tensors read back with gguf  | strength * source through hooks      |
|             | and added at direction.L; llama.cpp itself    | (llama.cpp: quantised weights, so    |
|             | (`steering.llamacpp`) at the export's         | judged against the unsteered noise:  |
|             | positions, all or generated                   | `steering.export.llamacpp`)          |
| hf-folded   | stock `AutoModelForCausalLM.from_pretrained`  | `steering.export.reference` hooks    |

Example:
    >>> report = verify_export("out/v.gguf", model, source=vector, strength=4.0)  # doctest: +SKIP
    >>> report.passed, report.comparisons["gguf read back vs hooks"].max_logit_diff  # doctest: +SKIP
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from interp.models.chat import render_chat
from interp.models.loading import ChatModel
from interp.store.compat import check_artifact_fits
from interp.tasks.example import Turn
from steering.artifacts.steerable import is_intervention_file, load_steerable
from steering.artifacts.steering_vector import SteeringVector
from steering.export.compare import PROMPTS, Agreement, Effect, agreement, answer_tokens, effect, hf_logits, prompt_ids
from steering.export.folded import EXPORT_FILE, folded_info, read_fold_record
from steering.export.gguf_cvec import check_gguf_control_vector, read_gguf_control_vector, read_gguf_info
from steering.export.info import ExportError, ExportInfo
from steering.export.native import load_native
from steering.export.reference import add_hooks, reference_hooks

EXACT_TOLERANCE = 1e-3  # max |logit difference| for exports that run the same float32 weights


@dataclass
class VerifyReport:
    """What verify-export found: rule problems, agreements with the reference, steering effects."""

    format: str
    path: str
    problems: list[str] = field(default_factory=list)
    comparisons: dict[str, Agreement] = field(default_factory=dict)
    effects: dict[str, Effect] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    llama_cpp: dict[str, Any] | None = None  # `LlamaCppResult.to_dict()` where llama.cpp ran

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": self.path, "passed": self.passed, "problems": self.problems,
                "comparisons": {k: v.to_dict() for k, v in self.comparisons.items()},
                "effects": {k: v.to_dict() for k, v in self.effects.items()}, "notes": self.notes,
                "llama_cpp": self.llama_cpp}

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [f"{self.format} export {self.path}: {'PASS' if self.passed else 'FAIL'}"]
        for name, a in self.comparisons.items():
            out.append(f"  {name}: max |dlogit| {a.max_logit_diff:.3g}, mean KL {a.mean_kl:.3g}, "
                       f"top-1 agreement {a.top1_agreement:.3f}")
        for name, e in self.effects.items():
            out.append(f"  effect in {name}: KL from unsteered {e.kl_from_unsteered:.4g}, "
                       f"log-odds(Yes/No) shift {e.logodds_shift:+.3f}")
        out += [f"  note: {n}" for n in self.notes]
        out += [f"  problem: {p}" for p in self.problems]
        return out

    def check_exact(self, name: str) -> None:
        a = self.comparisons[name]
        if not a.max_logit_diff <= EXACT_TOLERANCE:
            self.problems.append(f"{name}: max logit difference {a.max_logit_diff:.3g} exceeds {EXACT_TOLERANCE}")


def check_model(model: ChatModel, d_model: int, model_hash: str, force: bool) -> None:
    """Refuse an export made for another model: always for a width mismatch, for a hash mismatch unless forced.

    The check every artifact shares: `interp.store.compat.check_artifact_fits`.
    """
    check_artifact_fits("the export", d_model, model_hash, model.d_model, model.weights_hash, made="made for model",
                        force=force, force_hint="pass --force to verify it anyway", error=ExportError)


def _strength(given: float | None, info: ExportInfo | None, default: float | None) -> float | None:
    if given is not None:
        return given
    return info.strength if info is not None and info.strength is not None else default


def _baseline(model: ChatModel, ids: list[list[int]]) -> list[np.ndarray]:
    return hf_logits(model, model.hf, ids, {})


def verify_native(path: Path, model: ChatModel, source: SteeringVector | None, strength: float | None,
                  force: bool) -> VerifyReport:
    """The workbench reads its own file: the round trip must be exact and steer identically."""
    if is_intervention_file(path):  # a low-rank edit or head ablation: no vector, its own runtime
        return _verify_native_intervention(path, model, strength, force)
    vector, info = load_native(path)
    check_model(model, vector.d_model, vector.model_hash, force)
    report = VerifyReport("safetensors", str(path))
    reference = vector if source is None else source.select(list(info.layers))
    if source is not None and reference != vector:
        report.problems.append("the imported vector differs from the source vector at the exported layers")
    s = _strength(strength, info, None)
    ids, tokens = prompt_ids(model), answer_tokens(model)
    base = _baseline(model, ids)
    ref = hf_logits(model, model.hf, ids, reference_hooks(model, reference, info.mode, s))
    got = hf_logits(model, model.hf, ids, reference_hooks(model, vector, info.mode, s))
    report.comparisons["imported vector vs source (hooks)"] = agreement(ref, got)
    report.effects["hooks (source)"] = effect(base, ref, tokens)
    report.effects["hooks (imported)"] = effect(base, got, tokens)
    report.check_exact("imported vector vs source (hooks)")
    return report


def _verify_native_intervention(path: Path, model: ChatModel, strength: float | None, force: bool) -> VerifyReport:
    """A native export of an intervention that is no vector: it reads back exactly (save and load again give the
    same artifact, the same logits), and its effect through its runtime (`row_steering`, every position) is shown."""
    import tempfile

    import torch

    from steering.apply.row_steering import row_steering
    from steering.export.native import read_native_info

    artifact, info = load_steerable(path), read_native_info(path)
    artifact.check_compatible(model.d_model, model.weights_hash, force)
    report = VerifyReport("safetensors", str(path))
    with tempfile.TemporaryDirectory() as tmp:
        again = load_steerable(artifact.save(Path(tmp) / "again.safetensors"))
    if again.header() != artifact.header() or any(
            not np.array_equal(a, b) for a, b in zip(again.tensors().values(), artifact.tensors().values(), strict=True)):
        report.problems.append("the file does not read back as the same intervention")
    s = float(_strength(strength, info, 1.0) or 1.0)
    ids, tokens = prompt_ids(model), answer_tokens(model)
    base = _baseline(model, ids)

    def logits(which: Any) -> list[np.ndarray]:
        spec = row_steering(which, which.layers, "all", force=force)
        out = []
        for row in ids:
            with torch.no_grad(), spec.context(model, s, [len(row)]):
                out.append(model.hf(torch.tensor([row], device=model.device)).logits[0].float().cpu().numpy())
        return out

    got = logits(artifact)
    report.comparisons["imported vs read again (its runtime)"] = agreement(got, logits(again))
    report.effects[f"{artifact.method} (its runtime, every position)"] = effect(base, got, tokens)
    report.check_exact("imported vs read again (its runtime)")
    return report


def llama_positions(given: str | None, info: ExportInfo | None) -> str:
    """Where llama.cpp steers in verification: `given`, else the positions the export was measured at.

    A record from another tool (none) or with an unknown rule falls back to "all", what `--control-vector` does.
    """
    from steering.llamacpp.steered import POSITIONS

    if given is not None:
        if given not in POSITIONS:
            raise ExportError(f"--positions {given!r}: choose one of {', '.join(POSITIONS)}")
        return given
    return info.positions if info is not None and info.positions in POSITIONS else "all"


def verify_gguf(path: Path, model: ChatModel, source: SteeringVector | None, strength: float | None,
                force: bool, positions: str | None = None) -> VerifyReport:
    """Rule checks; the file's tensors steer HF exactly like the source; then llama.cpp itself at `positions`."""
    report = VerifyReport("gguf", str(path), problems=check_gguf_control_vector(path, model.n_layers, model.d_model))
    if report.problems:
        return report
    file_vector, info = read_gguf_control_vector(path), read_gguf_info(path)
    where = llama_positions(positions, info)
    check_model(model, file_vector.d_model, file_vector.model_hash, force)
    if source is None:
        reference, s = file_vector, 1.0
        report.notes.append("no --vector: the reference is the file's own tensors at strength 1")
    else:
        s_given = _strength(strength, info, None)
        if s_given is None:
            raise ExportError("the GGUF records no strength; pass --strength S")
        reference, s = source.select(file_vector.layers), s_given
        if not all(np.array_equal((reference * s).directions[k], file_vector.directions[k]) for k in file_vector.layers):
            report.problems.append("the file's tensors differ from strength * source vector")
    ids, tokens = prompt_ids(model), answer_tokens(model)
    base = _baseline(model, ids)
    ref = hf_logits(model, model.hf, ids, add_hooks(model, reference, s))
    got = hf_logits(model, model.hf, ids, add_hooks(model, file_vector, 1.0))
    report.comparisons["gguf read back vs hooks"] = agreement(ref, got)
    report.check_exact("gguf read back vs hooks")
    report.effects["HF hooks"] = effect(base, ref, tokens)
    _verify_in_llama_cpp(report, model, file_vector, where)
    return report


def _verify_in_llama_cpp(report: VerifyReport, model: ChatModel, file_vector: SteeringVector, positions: str) -> None:
    from steering.export import llamacpp
    from steering.llamacpp.build import VERSION, available

    gguf_model = llamacpp.model_gguf(model)
    if gguf_model is None:
        report.notes.append(f"model {model.spec!r} has no GGUF file: llama.cpp itself was not run")
        return
    if not available():
        report.problems.append(f"llama.cpp {VERSION} is not built, so it was not run: `make llamacpp` "
                               "(python -m steering.llamacpp.build) builds it once per machine")
        return
    result = llamacpp.check_in_llama_cpp(model, gguf_model, file_vector, positions)
    report.llama_cpp = result.to_dict()
    report.comparisons["llama.cpp unsteered vs HF unsteered (baseline)"] = result.baseline
    report.comparisons[f"llama.cpp steered vs HF hooks (positions {positions})"] = result.steered
    report.notes.append(
        f"llama.cpp {VERSION} ran {gguf_model.name} (quantised) at positions {positions} on {result.tokens} tokens "
        f"({result.steered_tokens} steered); HF runs its dequantised weights: judged against the unsteered "
        f"baseline's noise, not exact logits")
    report.notes.append(
        f"llama.cpp effect: KL from unsteered {result.kl_from_unsteered_llama_cpp:.4g} (HF hooks "
        f"{result.kl_from_unsteered_hf:.4g}); shift correlation {result.shift_correlation:.3f}, "
        f"{result.check_shift_correlation:.3f} at {result.check_strength:.3g}x strength")
    judged = {name: h for name, h in result.check.items() if h.judged}
    if judged:
        name, nearest = min(judged.items(), key=lambda item: item[1].kl_hypothesis - item[1].kl_reference)
        report.notes.append(
            f"convention check at {result.check_strength:.3g}x strength: {len(judged)} of {len(result.check)} wrong "
            f"hypotheses judged; the nearest, '{name}', is at KL {nearest.kl_hypothesis:.4g} against "
            f"{nearest.kl_reference:.4g} for the reference")
    report.problems.extend(result.problems)


def verify_folded(path: Path, model: ChatModel, source: SteeringVector | None, strength: float | None,
                  force: bool) -> VerifyReport:
    """Stock transformers loads the folder; its logits must equal the hook-steered model's."""
    info = folded_info(path)
    base_hash = str(read_fold_record(path).get("base_model", {}).get("weights_hash", info.model_hash))
    check_model(model, info.d_model, base_hash, force)
    if source is None:
        raise ExportError(f"verifying a folded checkpoint needs its source vector: --vector FILE (see {EXPORT_FILE})")
    report = VerifyReport("hf-folded", str(path))
    folded = AutoModelForCausalLM.from_pretrained(str(path)).to(model.device).eval()
    ids, tokens = prompt_ids(model), answer_tokens(model)
    theirs = AutoTokenizer.from_pretrained(str(path))
    if [list(theirs(render_chat(theirs, [Turn("user", p)]), add_special_tokens=False)["input_ids"])
            for p in PROMPTS] != ids:
        report.problems.append("the folder's tokenizer encodes the prompts differently from the model's")
    vector = source.select(list(info.layers))
    s = _strength(strength, info, None)
    base = _baseline(model, ids)
    ref = hf_logits(model, model.hf, ids, reference_hooks(model, vector, info.mode, s))
    got = hf_logits(model, folded, ids, {})
    report.comparisons["folded (stock transformers) vs hooks"] = agreement(ref, got)
    report.check_exact("folded (stock transformers) vs hooks")
    report.effects["hooks"] = effect(base, ref, tokens)
    report.effects["folded"] = effect(base, got, tokens)
    return report


Verifier = Callable[[Path, ChatModel, SteeringVector | None, float | None, bool], VerifyReport]
VERIFIERS: dict[str, Verifier] = {"safetensors": verify_native, "gguf": verify_gguf, "hf-folded": verify_folded}
#: the formats whose runtime steers by positions (verify_export's `positions`)
POSITIONED = {"gguf": verify_gguf}
