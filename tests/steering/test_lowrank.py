"""Low-rank edits: the formula by hand, exactly unsteered at zero edit and strength 0, trained by the learned loop,
saved and exported exactly, refused by the constant-vector exports, swept (and resumed) like a vector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from interp.models.hooks import hooks_on
from interp.sites import Site
from interp.tasks.example import Turn
from steering.apply.generation import generate_texts
from steering.apply.lowrank_steer import LowRankSpec, lowrank_delta, steer_lowrank
from steering.artifacts.lowrank_edit import LayerEdit, LowRankEdit
from steering.artifacts.vector_file import read_intervention
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import TestSetConfig
from steering.export.formats import export_vector
from steering.export.info import ExportError
from steering.methods.learned import LearnConfig, _pass_loss, _prepare
from steering.methods.learned_data import learning_groups
from steering.methods.lowrank_learned import LowRankParams, learn_lowrank, rotation_of
from steering.methods.registry import resolve_method
from steering.sweep import SweepConfig, read_table, run_sweep
from workbench.cli import app

SPLIT = PairSplit(0, 0.3)
TINY = LearnConfig(layers=(1,), n_pairs=6, steps=4, groups_per_step=3, eval_every=2, patience=10, val_fraction=0.3,
                   batch_size=16, lr=0.5, tasks=("answer", "mimicry"))
PROMPT = "What is the capital of France? I think it is Lyon."


def _edit(d: int, seed: int, rank: int = 2, zero: bool = False) -> LowRankEdit:
    rng = np.random.default_rng(seed)
    rotation = rotation_of(torch.from_numpy(rng.normal(size=(rank, d)).astype(np.float32))).numpy()
    weight = rotation.copy() if zero else rotation + rng.normal(scale=0.5, size=(rank, d)).astype(np.float32)
    bias = np.zeros(rank, np.float32) if zero else rng.normal(size=rank).astype(np.float32)
    return LowRankEdit({1: LayerEdit(rotation, weight, bias)}, method="lowrank:test%2", d_model=d,
                       edit_norms={1: 1.5}, resid_norms={1: 3.0})


def _logits(model, edit: LowRankEdit | None, strength: float | list[float] = 1.0) -> torch.Tensor:  # type: ignore[no-untyped-def]
    ids = model.tokenizer([PROMPT, "Is the Earth flat?"], return_tensors="pt", padding=True)
    with torch.no_grad():
        if edit is None:
            return model.hf(**ids).logits
        with steer_lowrank(model, edit, strength, positions="all"):
            return model.hf(**ids).logits


def test_a_hand_made_rank_one_edit_is_the_formula(tiny_model):
    d = tiny_model.d_model
    rotation = np.eye(d, dtype=np.float32)[:1]  # R = e0
    weight = 2.0 * np.eye(d, dtype=np.float32)[1:2]  # W = 2 e1
    bias = np.array([0.5], np.float32)
    h = torch.randn(2, 3, d, generator=torch.Generator().manual_seed(0))
    by_hand = torch.zeros_like(h)
    by_hand[..., 0] = 2.0 * h[..., 1] + 0.5 - h[..., 0]  # R^T (W h + b - R h)
    delta = lowrank_delta(h, *(torch.from_numpy(x) for x in (rotation, weight, bias)))
    torch.testing.assert_close(delta, by_hand)
    # in the model: layer 1's output moves by exactly s times the formula on its unsteered output
    edit = LowRankEdit({1: LayerEdit(rotation, weight, bias)}, method="lowrank:hand%1", d_model=d)
    ids = tiny_model.tokenizer([PROMPT], return_tensors="pt")
    seen: list[torch.Tensor] = []
    read = {Site(2, "hook_resid_pre"): lambda h: seen.append(h.clone())}  # = blocks.1.hook_resid_post, edited
    with torch.no_grad(), hooks_on(tiny_model, read):
        tiny_model.hf(**ids)
        with steer_lowrank(tiny_model, edit, 0.7, positions="all"):
            tiny_model.hf(**ids)
    before, after = seen
    expected = torch.zeros_like(before)
    expected[..., 0] = 0.7 * (2.0 * before[..., 1] + 0.5 - before[..., 0])
    torch.testing.assert_close(after - before, expected, atol=1e-5, rtol=1e-5)


def test_zero_edit_strength_zero_and_the_training_start_are_exactly_unsteered(tiny_model):
    base = _logits(tiny_model, None)
    assert torch.equal(_logits(tiny_model, _edit(tiny_model.d_model, 0, zero=True)), base)
    edit = _edit(tiny_model.d_model, 1)
    assert not edit.is_identity()
    assert torch.equal(_logits(tiny_model, edit, 0.0), base)
    assert torch.equal(_logits(tiny_model, edit, [0.0, 0.0]), base)
    assert float((_logits(tiny_model, edit, 1.0) - base).abs().max()) > 1e-4
    steered = _logits(tiny_model, edit, [1.0, 0.0])  # per-row strengths: row 1 unsteered
    assert torch.equal(steered[1], base[1]) and not torch.equal(steered[0], base[0])
    # strength folds in: the edit at 0.5 equals the folded edit at 1
    torch.testing.assert_close(_logits(tiny_model, edit * 0.5, 1.0), _logits(tiny_model, edit, 0.5), atol=1e-5,
                               rtol=1e-4)
    # rank 0 edits nothing: refused everywhere
    with pytest.raises(ValueError, match="rank"):
        LayerEdit(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="rank must be >= 1"):
        resolve_method("lowrank%0")
    with pytest.raises(ValueError, match="rank >= 1"):
        LowRankParams((1,), 0)
    with pytest.raises(ValueError, match="orthonormal"):
        LayerEdit(2 * np.eye(4, dtype=np.float32)[:1], np.zeros((1, 4), np.float32), np.zeros(1, np.float32))


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):  # type: ignore[no-untyped-def]
    return learn_lowrank(tiny_model, SPLIT, TINY, rank=2, folder=tmp_path_factory.mktemp("lowrank"))


def test_training_starts_unsteered_and_lowers_the_objective(tiny_model, trained):
    train, val = learning_groups(SPLIT, TINY.tasks, TINY.n_pairs, TINY.seed, TINY.wording, (), TINY.val_fraction)
    data, resid = _prepare(tiny_model, [*train, *val], TINY)
    start = LowRankParams(TINY.layers, 2)
    start.start(tiny_model, data, resid, TINY)
    zero = {1: torch.zeros(tiny_model.d_model)}
    with torch.no_grad():
        at_start, terms, _ = _pass_loss(tiny_model, TINY, data, train, start, grad=False)
        at_zero, _, _ = _pass_loss(tiny_model, TINY, data, train, zero, grad=False)
        assert float(at_start) == float(at_zero) and terms["keep"] == 0.0  # W = R, b = 0: exactly no edit
        edit = trained.edits[1]
        start.basis[1].copy_(torch.from_numpy(edit.rotation))  # the QR of orthonormal rows gives them back
        start.weight[1].copy_(torch.from_numpy(edit.weight))
        start.bias[1].copy_(torch.from_numpy(edit.bias))
        at_trained, _, _ = _pass_loss(tiny_model, TINY, data, train, start, grad=False)
    assert float(at_trained) < float(at_zero) - 1e-4
    assert trained.method == "lowrank:correct%2" and trained.rank == 2 and trained.positions == "generated"
    assert not trained.is_identity() and 0 < trained.edit_norms[1] < float("inf")
    assert trained.meta["learned"] == TINY.to_dict() and trained.meta["split"] == SPLIT.to_dict()
    assert trained.meta["steps_run"] == TINY.steps and len(trained.meta["history"]) == TINY.steps


def test_resume_equals_an_uninterrupted_training(tiny_model, trained, tmp_path: Path):
    learn_lowrank(tiny_model, SPLIT, TINY, rank=2, folder=tmp_path, stop_after=1)
    resumed = learn_lowrank(tiny_model, SPLIT, TINY, rank=2, folder=tmp_path)
    for layer in TINY.layers:
        np.testing.assert_allclose(resumed.edits[layer].weight, trained.edits[layer].weight, atol=1e-5)
        np.testing.assert_allclose(resumed.edits[layer].bias, trained.edits[layer].bias, atol=1e-5)


def test_save_load_and_native_export_round_trip_exactly_and_gguf_refuses(tiny_model, tiny_model_dir, trained,
                                                                         tmp_path: Path):
    path = trained.save(tmp_path / "edit.safetensors")
    back = LowRankEdit.load(path)
    assert back == trained and read_intervention(path) == trained
    out = export_vector("safetensors", trained, tmp_path / "export.safetensors", strength=1.0, model=tiny_model)
    assert LowRankEdit.load(out) == trained
    for fmt, name in (("gguf", "e.gguf"), ("hf-folded", "folded")):
        with pytest.raises(ExportError, match=f"format {fmt} cannot hold .*depends on the residual") as err:
            export_vector(fmt, trained, tmp_path / name, strength=1.0, model=tiny_model)
        assert "\n" not in str(err.value)
    res = CliRunner().invoke(app, ["export", "--vector", str(path), "--format", "gguf", "--strength", "1",
                                   "--out", str(tmp_path / "cli.gguf")])
    assert res.exit_code == 2 and "cannot hold" in res.output and not (tmp_path / "cli.gguf").exists()
    assert len(res.output.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="workbench.lowrank_edit/1"):  # not a vector: the vector reader says so
        from steering.artifacts.vector_file import read_vector

        read_vector(path)
    # `workbench steer --vector` applies it, as the edit's own row steering does
    run = CliRunner().invoke(app, ["steer", "--model", str(tiny_model_dir), "--vector", str(path), "--strength",
                                   "2", "--positions", "generated", "--prompt", PROMPT, "--max-new-tokens", "4"])
    assert run.exit_code == 0, run.output
    steered = generate_texts(tiny_model, [(Turn("user", PROMPT),)], 4, LowRankSpec(trained, (1,), "generated"),
                             [2.0])[0]
    assert f"[steered] {steered}" in run.output


def test_sweep_runs_a_lowrank_curve_resumes_without_training_and_exports(tiny_model, tmp_path: Path, monkeypatch):
    test = TestSetConfig(n_answer=2, n_are_you_sure=0, n_mimicry=0, n_feedback=0, n_capability=1, n_general=2)
    config = SweepConfig(methods=("lowrank%1", "learned"), layers=(1,), strengths=(-2.0, 2.0),
                         positions=("generated",), test=test, n_train=6, gen_prompts=1, gen_tokens=2, k_batch=4,
                         family_strengths={"lowrank": (1.0,), "learned": (-1.0,)},
                         learn=LearnConfig(**{**TINY.to_dict(), "steps": 2}), budget=10.0)
    folder = tmp_path / "run" / "sweep"
    result = run_sweep(config, folder, tiny_model)
    table = read_table(folder)
    curve = table[table.method == "lowrank:correct%1"].set_index("strength")
    assert sorted(curve.index) == [0.0, 1.0]
    edit = result.vectors["lowrank:correct%1"]
    assert isinstance(edit, LowRankEdit) and edit.rank == 1 and edit.meta["family"] == "lowrank"
    assert curve.loc[1.0, "vector_norm"] == pytest.approx(edit.edit_norms[1]) and curve.loc[1.0, "kl"] > 0
    assert curve.loc[0.0, "kl"] == 0
    record = json.loads((folder / "sweep.json").read_text())
    assert record["vectors"]["lowrank:correct%1"]["family"] == "lowrank"

    def no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the saved edit should be reused")

    monkeypatch.setattr("steering.methods.families.lowrank.learn_lowrank", no_training)
    again = run_sweep(config, folder, tiny_model)
    assert again.ran == 0 and again.vectors["lowrank:correct%1"] == edit
    # its best cell exports natively; a GGUF export of it says why not, in one line
    report = {"operating_point": {"method": "lowrank:correct%1", "layer": 1, "strength": 1.0,
                                  "positions": "generated", "mode": "add", "kl_all": [0.0, 0.0, 0.0]},
              "gain": "answer_shift_gain", "loss": "kl_all", "budget": 10.0}
    (folder / "report.json").write_text(json.dumps(report))
    gguf = CliRunner().invoke(app, ["export", "--sweep", str(folder), "--format", "gguf", "--out",
                                    str(tmp_path / "best.gguf")])
    assert gguf.exit_code == 2 and "cannot hold lowrank:correct%1" in gguf.output
    native = CliRunner().invoke(app, ["export", "--sweep", str(folder), "--format", "safetensors", "--out",
                                      str(tmp_path / "best.safetensors")])
    assert native.exit_code == 0, native.output
    exported = LowRankEdit.load(tmp_path / "best.safetensors")
    assert exported.edits[1].bias.tolist() == edit.edits[1].bias.tolist() and exported.positions == "generated"
