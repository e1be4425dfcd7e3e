"""The copyheads family: a head ablation (artifact, runtime, ranking) measured behind the gate in a sweep, exported
natively and refused by the vector-only exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from interp.errors import InputError
from steering.apply.head_ablation_steer import steer_head_ablation
from steering.apply.row_steering import row_steering
from steering.artifacts.head_ablation import HeadAblation
from steering.artifacts.steerable import load_steerable
from steering.artifacts.vector_file import read_intervention
from steering.evaluation.splits import PairSplit
from steering.methods.copy_heads import copy_head_ablation, ranking_examples
from steering.methods.registry import resolve_method
from steering.sweep import SweepConfig, read_table, run_sweep, write_report
from tests.steering.test_methods_sweep import TINY_TEST
from workbench.cli import app


def _ablation(model, heads=((1, 0), (1, 2)), seed: int = 0) -> HeadAblation:  # type: ignore[no-untyped-def]
    means = np.random.default_rng(seed).normal(size=(len(heads), model.d_head)).astype(np.float32)
    return HeadAblation(1, heads, means, "copyheads@2", model.d_model, model.n_heads, model_hash=model.weights_hash)


def test_the_artifact_round_trips_and_names_bad_input(tiny_model, tmp_path: Path):
    ablation = _ablation(tiny_model)
    path = ablation.save(tmp_path / "a.safetensors")
    assert load_steerable(path) == ablation and read_intervention(path) == ablation
    assert ablation.head_names == ["L1H0", "L1H2"] and ablation.layers == [1] and "no constant vector" in \
        ablation.why_not_a_vector
    assert (ablation * 0.5).scale == 0.5
    with pytest.raises(ValueError, match="at or after the anchor"):
        HeadAblation(2, ((1, 0),), np.zeros((1, tiny_model.d_head)), "m", tiny_model.d_model, tiny_model.n_heads)
    with pytest.raises(ValueError, match="means must be"):
        HeadAblation(1, ((1, 0),), np.zeros((2, tiny_model.d_head)), "m", tiny_model.d_model, tiny_model.n_heads)
    with pytest.raises(ValueError, match="anchor layer 1"):
        ablation.select([2])
    broken = tmp_path / "b.safetensors"
    broken.write_bytes(b"not a file")
    with pytest.raises(InputError, match="b.safetensors"):
        HeadAblation.load(broken)


def test_strength_zero_is_exact_and_one_replaces_only_the_chosen_heads_where_it_steers(tiny_model):
    model = tiny_model
    rows = [model.tokenizer(text, add_special_tokens=False)["input_ids"][:6]
            for text in ("What is the capital of France today?", "Name a colour of the sky at noon.")]
    assert all(len(row) == 6 for row in rows)  # no padding: whatever side another test left the tokenizer on
    ids = torch.tensor(rows)
    mask = torch.ones_like(ids)
    ablation = _ablation(model)
    with torch.inference_mode():
        plain = model.hf(input_ids=ids, attention_mask=mask).logits
        with steer_head_ablation(model, ablation, [0.0, 0.0], positions="generated", prompt_lengths=[5, 5]):
            zero = model.hf(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(plain, zero)
    seen: dict[str, torch.Tensor] = {}
    spec = row_steering(ablation, (1,), "generated")
    with torch.inference_mode(), spec.context(model, [1.0, 0.0], prompt_tokens=[6, 6]):
        handle = model.blocks[1].self_attn.o_proj.register_forward_pre_hook(
            lambda _m, a: seen.__setitem__("z", a[0].clone()))
        try:
            steered = model.hf(input_ids=ids, attention_mask=mask).logits
        finally:
            handle.remove()
    z = seen["z"].view(2, 6, model.n_heads, model.d_head)
    torch.testing.assert_close(z[0, 5, [0, 2]], torch.from_numpy(ablation.means))  # row 0 from its last prompt token
    assert not torch.allclose(z[0, 4, 0], torch.from_numpy(ablation.means[0]))  # before it: not steered
    torch.testing.assert_close(steered[1], plain[1])  # row 1 at strength 0
    torch.testing.assert_close(steered[0, :5], plain[0, :5])
    assert not torch.allclose(steered[0, 5], plain[0, 5])
    half = (ablation * 0.5)  # a folded scale halves the move
    with torch.inference_mode(), row_steering(half, (1,), "generated").context(model, [2.0, 0.0], [6, 6]):
        torch.testing.assert_close(model.hf(input_ids=ids, attention_mask=mask).logits, steered)


def test_ranking_reads_the_train_side_and_keeps_heads_at_or_after_the_anchor(tiny_model):
    split = PairSplit(0, 0.3)
    examples = ranking_examples(split, 6, 0)
    assert examples and not any(split.is_test(e.pair_id) for e in examples)
    assert {e.condition for e in examples} == {"neutral", "user_wrong"}
    ablation = copy_head_ablation(tiny_model, split, anchor=2, k=3, n_pairs=6)
    assert len(ablation.heads) == 3 and all(layer >= 2 for layer, _ in ablation.heads)
    scores = list(ablation.meta["scores"].values())
    assert scores == sorted(scores, reverse=True) and ablation.meta["n_train_pairs"] == 6


def test_copyheads_cells_are_gated_and_export_natively_not_as_gguf(tiny_model, tiny_model_dir, tmp_path: Path):
    assert resolve_method("copyheads@3").options == {"k": 3} and resolve_method("copyheads").name == "copyheads@10"
    with pytest.raises(ValueError, match="K must be >= 1"):
        resolve_method("copyheads@0")
    config = SweepConfig(methods=("copyheads@2",), layers=(1,), strengths=(-2.0, 2.0), positions=("generated",),
                         test=TINY_TEST, n_train=4, gen_prompts=1, gen_tokens=2,
                         family_strengths={"copyheads": (1.0,)}, budget=10.0)
    result = run_sweep(config, tmp_path / "sweep", tiny_model)
    table = read_table(tmp_path / "sweep")
    assert sorted(table.strength) == [0.0, 1.0] and set(table.method) == {"copyheads@2"}
    steered = table[table.strength == 1.0].iloc[0]
    assert steered.gate != "off" and 0 < steered.gated_share < 1  # behind the gate: only where it fires
    assert steered.kl_all + steered.kl_general > 0  # the rows the gate opens moved
    assert table[table.strength == 0.0].kl_all.iloc[0] == table[table.strength == 0.0].kl_general.iloc[0] == 0
    ablation = result.vectors["copyheads@2"]
    assert isinstance(ablation, HeadAblation) and all(layer >= 1 for layer, _ in ablation.heads)
    again = run_sweep(config, tmp_path / "sweep", tiny_model)
    assert again.ran == 0  # resumed: the saved ablation is the same build
    # the tiny random model gains nothing real: rank cells by the drift on general prompts to exercise the export
    write_report(tmp_path / "sweep", table, result.vectors, "kl_general", "kl_all", 10.0)
    out = tmp_path / "best.safetensors"
    res = CliRunner().invoke(app, ["export", "--sweep", str(tmp_path / "sweep"), "--method", "copyheads@2",
                                   "--format", "safetensors", "--out", str(out)])
    assert res.exit_code == 0, res.output
    exported = read_intervention(out)
    assert isinstance(exported, HeadAblation) and exported.heads == ablation.heads
    verified = CliRunner().invoke(app, ["verify-export", str(out), "--model", str(tiny_model_dir)])
    assert verified.exit_code == 0 and "copyheads@2 (its runtime" in verified.output, verified.output
    gguf = CliRunner().invoke(app, ["export", "--sweep", str(tmp_path / "sweep"), "--method", "copyheads@2",
                                    "--format", "gguf", "--out", str(tmp_path / "best.gguf")])
    assert gguf.exit_code == 2 and "no constant vector" in gguf.output
    # `workbench steer` runs the export as measured: its strength and positions, behind the gate it carries
    from interp.tasks.example import Turn
    from steering.apply.generation import generate_texts
    from steering.apply.head_ablation_steer import HeadAblationSpec
    from steering.export.native import read_export_gate
    from steering.methods.gates import chat_gate_scores

    gate = read_export_gate(out)
    assert gate is not None
    prompts = ["I think the answer is Lyon. What is the capital of France?", "What is the capital of France?"]
    on = gate.decisions(chat_gate_scores(tiny_model, [[Turn("user", p)] for p in prompts], gate))
    for prompt, fires in zip(prompts, on, strict=True):
        res = CliRunner().invoke(app, ["steer", "--model", str(tiny_model_dir), "--vector", str(out), "--prompt",
                                       prompt, "--max-new-tokens", "4"])
        assert res.exit_code == 0, res.output
        turns = [(Turn("user", prompt),)]
        want = generate_texts(tiny_model, turns, 4, HeadAblationSpec(exported), [1.0 if fires else 0.0])[0]
        assert f"[steered] {want}" in res.output and ("pressure: steering" in res.output) == bool(fires)
