"""The method registry is a table: a new family is one class plus one line in `FAMILIES`, nothing else.

The toy family below is the whole diff a new family needs (besides its line in the table, which the test adds
with monkeypatch): the sweep, its strength grid, layers, positions, resume and report take it from there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit, pairs_hash
from steering.evaluation.testset import TestSetConfig
from steering.methods import registry
from steering.methods.family import BuildRequest, Family, Method
from steering.sweep import SweepConfig, read_table, run_sweep

TINY_TEST = TestSetConfig(n_answer=2, n_are_you_sure=0, n_mimicry=0, n_feedback=0, n_capability=1, n_general=2)


class Ones(Family):
    """`ones[@positions]`: a constant vector, steered at `all` unless named (a family with its own positions)."""

    name = "ones"
    strengths = (-0.5, 0.5)

    def parse(self, spec: str) -> Method | None:
        base, _, positions = spec.partition("@")
        if base != "ones":
            return None
        return Method(f"ones@{positions or 'all'}", self.name, "all ones", {"positions": positions or "all"})

    def build(self, method: Method, request: BuildRequest) -> SteeringVector:
        d = request.model.d_model
        return SteeringVector({layer: np.ones(d, np.float32) for layer in request.layers}, method=method.name,
                              d_model=d, model_hash=request.model.weights_hash,
                              meta={"split": request.split.to_dict(), "seed": request.seed,
                                    "train_pairs_hash": pairs_hash([])})

    def positions(self, method: Method, positions: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        return (method.options["positions"],)


def test_a_new_family_is_one_class_and_one_line(monkeypatch, tiny_model, tmp_path: Path):
    monkeypatch.setattr(registry, "FAMILIES", (Ones(), *registry.FAMILIES))
    assert registry.resolve_method("ones").family == "ones"
    config = SweepConfig(methods=("ones", "caa"), layers=(1, 2), strengths=(-2.0, 2.0), positions=("generated",),
                         test=TINY_TEST, n_train=4, gen_prompts=0, k_batch=4, budget=10.0)
    result = run_sweep(config, tmp_path / "sweep", tiny_model)
    table = read_table(tmp_path / "sweep")
    ones = table[table.method == "ones@all"]
    # its own strength grid, both sweep layers, its own positions, the 0 anchor of each curve
    assert sorted(ones.strength.unique()) == [-0.5, 0.0, 0.5]
    assert sorted(ones.layer.unique()) == [1, 2] and set(ones.positions) == {"all"}
    assert set(table[table.method == "caa"].positions) == {"generated"}
    assert (ones[ones.strength != 0].kl > 0).all()
    assert result.vectors["ones@all"].meta["family"] == "ones"
    # resume: the saved vector is the same build, nothing runs again
    assert run_sweep(config, tmp_path / "sweep", tiny_model).ran == 0


def test_a_family_that_breaks_its_parse_says_so():
    with pytest.raises(ValueError, match="unknown method 'nothing-like-this'|unknown vector method"):
        registry.resolve_method("nothing-like-this")
    with pytest.raises(ValueError, match="unknown method family"):
        registry.family("vibes")
    with pytest.raises(ValueError, match="unknown method family 'vibes'"):
        SweepConfig(methods=("caa",), family_strengths={"vibes": (1.0,)})


def test_file_family_reads_every_format_and_refuses_a_wrong_width(tiny_model, tmp_path: Path):
    from safetensors.numpy import save_file

    from steering.export.gguf_cvec import export_gguf
    from steering.methods.registry import build_method_vector, resolve_method

    d = tiny_model.d_model
    rng = np.random.default_rng(0)
    v1, v2 = rng.normal(size=d).astype(np.float32), rng.normal(size=d).astype(np.float32)
    native = SteeringVector({1: v1, 2: v2}, method="mine", d_model=d, model_hash=tiny_model.weights_hash)
    native.save(tmp_path / "native.safetensors")
    export_gguf(native, tmp_path / "cvec.gguf", strength=1.0, model_hint="llama")
    np.save(tmp_path / "one.npy", v1)
    np.save(tmp_path / "stack.npy", np.stack([np.zeros(d, np.float32), v1, v2]))
    save_file({"model.layers.1": v1, "model.layers.2": v2}, str(tmp_path / "plain.safetensors"))
    request = BuildRequest(tiny_model, PairSplit(0, 0.3), (1,), tmp_path / "work")
    for spec in ("native.safetensors", "cvec.gguf", "one.npy#1", "stack.npy", "plain.safetensors"):
        method = resolve_method(f"file:{tmp_path / spec}")
        vector = build_method_vector(method, request)
        assert vector.layers == [1] and vector.meta["family"] == "file", spec
        np.testing.assert_allclose(vector.directions[1], v1, rtol=1e-6, err_msg=spec)
    two = build_method_vector(resolve_method(f"file:{tmp_path / 'stack.npy'}#2"), dataclasses.replace(request))
    np.testing.assert_allclose(two.directions[2], v2, rtol=1e-6)
    np.save(tmp_path / "wide.npy", np.ones(d + 3, np.float32))
    with pytest.raises(ValueError, match=r"wide\.npy.*(width|d_model|576|has \d+)") as err:
        build_method_vector(resolve_method(f"file:{tmp_path / 'wide.npy'}#1"), request)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no layer"):
        build_method_vector(resolve_method(f"file:{tmp_path / 'one.npy'}"), request)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="no pickle"):
        build_method_vector(resolve_method(f"file:{tmp_path / 'obj.npy'}#1"), request)


def test_multi_layer_learned_equals_single_layer_on_one_layer_and_sweeps_its_group(tiny_model, tmp_path: Path):
    from steering.methods.learned import LearnConfig

    learn = LearnConfig(n_pairs=4, steps=2, groups_per_step=2, eval_every=1, tasks=("answer", "mimicry"),
                        val_fraction=0.3, batch_size=16, lr=0.5)
    config = SweepConfig(methods=("learned", "learned#1", "learned#1+2"), layers=(1,), strengths=(-2.0, 2.0),
                         positions=("generated",), test=TINY_TEST, n_train=4, gen_prompts=0, k_batch=4,
                         family_strengths={"learned": (-1.0,)}, learn=learn, budget=10.0)
    result = run_sweep(config, tmp_path / "sweep", tiny_model)
    single, one, joint = (result.vectors[m] for m in ("learned:correct", "learned:correct#1", "learned:correct#1+2"))
    np.testing.assert_array_equal(one.directions[1], single.directions[1])  # one layer: the same training
    assert joint.layers == [1, 2] and list(joint.meta["learned"]["layers"]) == [1, 2]
    assert not np.allclose(joint.directions[1], single.directions[1])  # trained jointly with layer 2
    table = read_table(tmp_path / "sweep")
    group = table[table.method == "learned:correct#1+2"]
    assert set(group.layers) == {"1,2"} and set(group.layer) == {1}
    norm = float(np.linalg.norm(np.concatenate([joint.directions[1], joint.directions[2]])))
    assert group[group.strength == -1.0].vector_norm.iloc[0] == pytest.approx(norm, rel=1e-5)


def test_prompt_family_changes_only_the_system_turn_and_composes_with_a_method(tiny_model, tmp_path: Path):
    from steering.methods.families.prompt import PROMPT_KEY
    from steering.methods.learned import LearnConfig
    from steering.sweep.cells import CellContext

    learn = LearnConfig(n_pairs=4, steps=1, groups_per_step=2, eval_every=1, tasks=("answer", "mimicry"),
                        val_fraction=0.3, batch_size=16, lr=0.5)
    config = SweepConfig(methods=("prompt:skeptical", "prompt:default", "prompt:skeptical+learned"), layers=(1,),
                         strengths=(-2.0, 2.0), positions=("generated",), test=TINY_TEST, n_train=4, gen_prompts=1,
                         gen_tokens=2, family_strengths={"learned": (-1.0,)}, learn=learn, budget=10.0, gate="both")
    result = run_sweep(config, tmp_path / "sweep", tiny_model)
    table = read_table(tmp_path / "sweep")
    skeptical = table[table.method == "prompt:skeptical"]
    assert list(skeptical.strength) == [0.0] and set(skeptical.gate) == {"off"}  # one cell, never gated
    assert skeptical.kl.iloc[0] > 0  # the prompt moves the model
    default = table[table.method == "prompt:default"].iloc[0]  # no default system prompt here: nothing changes
    assert default.kl == 0 and default.answer_shift_gain == 0
    composed = table[table.method == "prompt:skeptical+learned:correct"].set_index("strength")
    assert sorted(composed.index) == [-1.0, 0.0]
    assert composed.loc[0.0, "kl"] == pytest.approx(skeptical.kl.iloc[0], rel=1e-6)  # strength 0 = the prompt
    assert (tmp_path / "sweep" / "vectors" / "learned-correct.safetensors").is_file()  # the inner vector, reused
    vector = result.vectors["prompt:skeptical+learned:correct"]
    assert vector.meta[PROMPT_KEY].startswith("The user's suggestion") and vector.meta["family"] == "learned"
    # the prompting baseline on every figure: a reference level in each trade-off panel, a point on the frontier;
    # it has no norm axis, so no law fit
    from steering.sweep import write_report

    report = write_report(tmp_path / "sweep", table, result.vectors, "answer_shift_gain", "kl_all", 10.0)
    html = Path(report["figures"]["trade_off"]["html"]).read_text()
    assert "prompt:skeptical" in html and "prompt:skeptical" in Path(report["figures"]["pareto"]["html"]).read_text()
    assert not any(f["method"].startswith("prompt:skeptical") and "+" not in f["method"] for f in report["fits"])
    context = CellContext(tiny_model, config)
    prompted = context.prompted(vector.meta[PROMPT_KEY]).test
    for before, after in zip(context.test.examples, prompted.examples, strict=True):
        assert after.turns[0].role == "system" and after.turns[0].content == vector.meta[PROMPT_KEY]
        assert after.turns[1:] == before.turns and after.choices == before.choices and after.id == before.id
