"""llama.cpp itself: the cached library build, the C binding, positions on llama.cpp, and verify-export through it.

Tests that need the library take the `llama_cpp_library` fixture: under CI or `make test` (--require-llamacpp)
a missing library fails them; plain pytest skips them with the command that builds it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest

from steering.apply.spec import steer_lengths
from steering.export import export_gguf, verify_export
from steering.export import llamacpp as verify_llama
from steering.export.compare import PROMPTS, agreement, hf_logits, mean_kl, prompt_ids
from steering.export.reference import add_hooks
from steering.llamacpp import build, capi, runtime
from steering.llamacpp.runtime import ControlVector, LlamaContext, LlamaModel
from steering.llamacpp.steered import score, spans, steered_span
from tests.steering.builders import random_vector

LAYERS_MID = (8, 9, 10, 11, 12)
FEW = (PROMPTS[0], PROMPTS[6])  # a neutral question and a user's wrong opinion keep the llama.cpp tests short


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_spans_follow_the_workbench_positions(positions):
    """Token t is steered on llama.cpp exactly where `steer` steers it: the boundary is `steer_lengths`."""
    prompt_tokens, n = 7, 11
    boundary = steer_lengths([prompt_tokens])[0]
    expected = {"all": [True] * n, "prompt": [t < boundary for t in range(n)],
                "generated": [t >= boundary for t in range(n)]}[positions]
    got = [on for a, b, on in spans(n, steered_span(positions, prompt_tokens)) for _ in range(a, b)]
    assert got == expected
    assert spans(n, steered_span("generated", prompt_tokens)) == [(0, 6, False), (6, 11, True)]
    with pytest.raises(ValueError, match="unknown positions"):
        steered_span("answer", prompt_tokens)


def test_build_cache_is_keyed_by_version_and_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    folder = tmp_path / "llama.cpp" / build.VERSION
    assert build.library_dir() == folder and build.find_library() is None
    assert build.main(["--check"]) == 1 and "not built" in capsys.readouterr().out
    folder.mkdir(parents=True)
    (folder / capi.LIBRARY).write_bytes(b"")
    (folder / build.MANIFEST).write_text(json.dumps({"cmake_flags": ["-DGGML_NATIVE=ON"]}))
    assert build.find_library() is None  # built with other flags: rebuilt
    (folder / build.MANIFEST).write_text(json.dumps({"cmake_flags": list(build.CMAKE_FLAGS)}))
    assert build.find_library() == folder and build.main(["--check"]) == 0


def test_probe_source_covers_every_declared_field():
    source = capi.probe_source()
    for c_name, struct in capi.STRUCTS.items():
        for name, *_ in struct._fields_:
            assert f"offsetof({c_name}, {name})" in source
    layout = {c_name: capi.struct_layout(struct) for c_name, struct in capi.STRUCTS.items()}
    assert capi.check_layout(layout) == []
    layout["struct llama_context_params"]["n_threads"] += 4
    problems = capi.check_layout(layout)
    assert len(problems) == 1 and problems[0].startswith("struct llama_context_params")


def test_bindings_read_the_libraries_defaults(llama_cpp_library):
    """Struct layouts match the built header (else `load` refuses), and by-value structs come back intact."""
    lib = capi.load(llama_cpp_library)
    cp = lib.llama_context_default_params()
    assert (cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max, cp.n_outputs_max_per_seq) == (512, 2048, 512, 1, 1)
    assert (cp.yarn_ext_factor, cp.defrag_thold, cp.kv_unified, cp.offload_kqv, cp.swa_full) == (-1.0, -1.0, False,
                                                                                                   True, True)
    mp = lib.llama_model_default_params()
    assert (mp.vocab_only, mp.check_tensors, mp.use_extra_bufts) == (False, False, True)


@pytest.mark.embedded
def test_control_vector_lands_on_the_hooked_layer(embedded_model, llama_cpp_library):
    """direction.L is added at blocks.L.hook_resid_post: llama.cpp matches the hook at L, not at L - 1 or L + 1."""
    layer = 10
    vector = random_vector(embedded_model, layers=(layer,), scale=2.5)  # norm ~60, about half the residual norm
    ids = prompt_ids(embedded_model, FEW)
    with LlamaModel(verify_llama.model_gguf(embedded_model)) as lm, LlamaContext(lm, n_ctx=128) as ctx:
        assert (lm.n_layers, lm.d_model) == (embedded_model.n_layers, embedded_model.d_model)
        cvec = ControlVector.of(vector, 1.0, lm.n_layers)
        steered = [score(ctx, row, cvec, "all", len(row)) for row in ids]
    kl = {}
    for hook_layer in (layer - 1, layer, layer + 1):
        moved = replace(vector, directions={hook_layer: vector.directions[layer]})
        kl[hook_layer] = agreement(hf_logits(embedded_model, embedded_model.hf, ids, add_hooks(embedded_model, moved, 1.0)),
                                   steered).mean_kl
    assert kl[layer] < 0.05 and kl[layer] * 5 < min(kl[layer - 1], kl[layer + 1]), kl


@pytest.mark.embedded
def test_positions_set_and_clear_the_vector_between_decodes(embedded_model, llama_cpp_library):
    """"generated" leaves prompt[:-1] bit-identical to unsteered and steers from the last prompt token;
    "prompt" is the mirror image; clearing the vector leaves no trace."""
    prompt = prompt_ids(embedded_model, FEW[:1])[0]
    ids, n = prompt + [504, 3458, 28, 253], len(prompt)
    vector = random_vector(embedded_model, layers=(8, 12), scale=0.5)
    with LlamaModel(verify_llama.model_gguf(embedded_model)) as lm, LlamaContext(lm, n_ctx=128) as ctx:
        cvec = ControlVector.of(vector, 1.0, lm.n_layers)
        base = score(ctx, ids, None, "all", n)
        generated = score(ctx, ids, cvec, "generated", n)
        prompt_only = score(ctx, ids, cvec, "prompt", n)
        every = score(ctx, ids, cvec, "all", n)
        again = score(ctx, ids, None, "all", n)
        assert ctx.vector_changes >= 4
    assert np.array_equal(generated[: n - 1], base[: n - 1])
    assert not any(np.array_equal(generated[t], base[t]) for t in range(n - 1, len(ids)))
    assert mean_kl([base[n - 1 :]], [generated[n - 1 :]]) > 1e-3
    assert np.array_equal(prompt_only[: n - 1], every[: n - 1]) and not np.array_equal(prompt_only[n - 1 :], every[n - 1 :])
    assert np.array_equal(again, base)


@pytest.fixture
def few_prompts(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(verify_llama, "PROMPTS", FEW)


def _export(model, tmp_path, positions):  # type: ignore[no-untyped-def]
    vector = random_vector(model, layers=tuple(range(5, 21)), seed=3, positions=positions, scale=0.12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the positions warning for a "generated" vector
        return vector, export_gguf(vector, tmp_path / "v.gguf", strength=1.0, n_layers=model.n_layers)


@pytest.mark.embedded
def test_verify_export_runs_llama_cpp_at_the_recorded_positions(embedded_model, llama_cpp_library, tmp_path,
                                                                 few_prompts):
    vector, path = _export(embedded_model, tmp_path, "generated")
    report = verify_export(path, embedded_model, source=vector)
    assert report.passed, report.lines()
    cpp = report.llama_cpp
    assert cpp is not None and cpp["positions"] == "generated" and 0 < cpp["steered_tokens"] < cpp["tokens"]
    assert cpp["steered_kl_steered_tokens"] <= 2 * cpp["baseline_kl_steered_tokens"] + 0.002
    assert cpp["check_shift_correlation"] > 0.8
    assert all(h["kl_reference"] < h["kl_hypothesis"] for h in cpp["check"].values() if h["judged"])
    assert cpp["check"]["sign flipped"]["judged"] and cpp["check"]["positions all"]["judged"]
    assert {"layers -1", "layers +1", "sign flipped", "positions all"} <= set(cpp["check"])


@pytest.mark.embedded
def test_verify_export_fails_a_layer_offset(embedded_model, llama_cpp_library, tmp_path, few_prompts, monkeypatch):
    """A deployment that puts direction.L one layer later (buffer slot L instead of L - 1) fails verification."""
    real = runtime.cvec_buffer

    def one_layer_late(vector, n_layers):  # type: ignore[no-untyped-def]
        buffer, start, end = real(vector, n_layers)
        return np.roll(buffer, vector.d_model), start + 1, end + 1

    monkeypatch.setattr(runtime, "cvec_buffer", one_layer_late)
    vector, path = _export(embedded_model, tmp_path, "all")
    report = verify_export(path, embedded_model, source=vector)
    assert not report.passed and report.llama_cpp is not None and report.llama_cpp["positions"] == "all"
    assert any("closer to 'layers +1'" in p for p in report.problems), report.problems


@pytest.mark.embedded
def test_llama_cpp_check_fails_a_flipped_sign(embedded_model, llama_cpp_library, tmp_path):
    vector = random_vector(embedded_model, layers=tuple(range(5, 21)), seed=3, scale=0.12)
    result = verify_llama.check_in_llama_cpp(embedded_model, verify_llama.model_gguf(embedded_model), vector,
                                             "generated", llama_vector=vector * -1.0, prompts=FEW)
    assert any("closer to 'sign flipped'" in p for p in result.problems), result.problems
    assert result.check_shift_correlation < 0


@pytest.mark.embedded
def test_test_set_scored_through_llama_cpp(embedded_model, llama_cpp_library):
    """The sweep's metrics through llama.cpp: the same table as the hook scorer's and close to it unsteered
    (KL of the quantisation only); with a vector, the choices' shared context kept in the KV cache changes no
    value against decoding each choice from scratch."""
    from interp.scoring.choices import choice_span, scoring_context
    from steering.evaluation.evaluate import prompt_tokens, score_strengths
    from steering.evaluation.splits import PairSplit
    from steering.evaluation.testset import TestSetConfig, build_test_set
    from steering.export.compare import log_softmax
    from steering.llamacpp.scoring import choice_logprobs, score_test_set
    from steering.sweep.metrics import cell_metrics

    test = build_test_set(TestSetConfig(n_answer=2, n_are_you_sure=0, n_mimicry=0, n_feedback=0, n_capability=0),
                          PairSplit(0, 0.3))
    hf = score_strengths(embedded_model, test, None, [0.0])[0]
    vector = random_vector(embedded_model, layers=LAYERS_MID, seed=4, scale=0.15)
    example = max(range(len(test.examples)), key=lambda i: max(map(len, test.examples[i].choices)))
    with LlamaModel(verify_llama.model_gguf(embedded_model)) as lm, LlamaContext(lm, n_ctx=512) as ctx:
        base = score_test_set(embedded_model, ctx, test, None, "generated")
        cvec = ControlVector.of(vector, 4.0, lm.n_layers)
        values, _ = choice_logprobs(embedded_model, ctx, [test.examples[example]], cvec, "generated")
        n = prompt_tokens(embedded_model, [test.examples[example]])[0]
        text, context = scoring_context(embedded_model, test.examples[example])
        for j, choice in enumerate(test.examples[example].choices):  # each choice from scratch, nothing kept
            ids, start = choice_span(embedded_model, test.examples[example], text, context, choice)
            logits = score(ctx, ids, cvec, "generated", n)
            alone = [float(log_softmax(logits[t - 1])[ids[t]]) for t in range(start, len(ids))]
            assert values[(0, j)] == pytest.approx(alone, abs=2e-3)
    assert list(base.rows.columns) == list(hf.rows.columns) and len(base.rows) == len(test.examples)
    assert (base.rows["pred"].to_numpy() == hf.rows["pred"].to_numpy()).mean() >= 0.8
    assert base.next_logprobs.shape == hf.next_logprobs.shape
    # llama.cpp read as a "cell" against the hook scorer's unsteered run: only the quantisation moves it
    metrics = cell_metrics(hf, base, test)
    assert 0.0 < metrics["kl"] < 0.05 and abs(metrics["user_wrong_accuracy_drop"]) <= 0.25
