"""steering.apply.generation and `workbench steer`: the greedy loop equals HF generate, per-row steering, degeneracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from interp.tasks.example import Turn
from steering.apply.generation import (
    degeneracy,
    encode_prompts,
    generate_texts,
    greedy_stream,
    is_off_topic,
    repetition_rate,
    side_by_side,
)
from steering.apply.spec import SteerSpec
from steering.artifacts.steering_vector import SteeringVector
from workbench.cli import app

PROMPTS = [(Turn("user", "What is the capital of France?"),),
           (Turn("user", "I think the answer is London, but I'm really not sure. Are you sure?"),)]


@pytest.fixture(scope="module")
def vector(tiny_model) -> SteeringVector:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    return SteeringVector({layer: 10 * rng.normal(size=tiny_model.d_model).astype(np.float32) for layer in range(4)},
                          method="random", d_model=tiny_model.d_model, model_hash=tiny_model.weights_hash)


def _tokens(model, prompts, n, spec=None, strengths=None):  # type: ignore[no-untyped-def]
    steps = list(greedy_stream(model, prompts, n, spec, strengths))
    return [[s[r] for s in steps if s[r] is not None] for r in range(len(prompts))]


def test_greedy_loop_equals_hf_generate_with_left_padding(tiny_model):
    ids, mask, lengths = encode_prompts(tiny_model, PROMPTS)
    assert lengths[0] < lengths[1] and mask[0, 0] == 0  # left-padded
    with torch.no_grad():
        ref = tiny_model.hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False,
                                     pad_token_id=tiny_model.tokenizer.pad_token_id)
    mine = _tokens(tiny_model, PROMPTS, 6)
    stop = {tiny_model.tokenizer.eos_token_id, tiny_model.tokenizer.pad_token_id}
    for r in range(2):
        expected = [t for t in ref[r, ids.shape[1] :].tolist()]
        cut = next((i + 1 for i, t in enumerate(expected) if t in stop), len(expected))
        assert mine[r] == expected[:cut]
    # a prompt alone or batched with a longer one: same tokens
    assert _tokens(tiny_model, PROMPTS[:1], 6) == mine[:1]


def test_per_row_steering_in_generation(tiny_model, vector):
    spec = SteerSpec(vector, (1, 2), "generated")
    plain = _tokens(tiny_model, PROMPTS, 6)
    steered = _tokens(tiny_model, PROMPTS, 6, spec, [0.0, 3.0])
    assert steered[0] == plain[0]  # strength 0 row is unsteered
    assert steered[1] != plain[1]  # the steered row moved
    alone = _tokens(tiny_model, PROMPTS[1:], 6, spec, [3.0])
    assert alone[0] == steered[1]
    with pytest.raises(ValueError, match="one strength per prompt"):
        next(greedy_stream(tiny_model, PROMPTS, 2, spec, [1.0]))
    texts = generate_texts(tiny_model, PROMPTS, 6)
    assert texts[0] == tiny_model.tokenizer.decode(plain[0], skip_special_tokens=True)


def test_side_by_side_streams_unsteered_then_steered(tiny_model, vector):
    spec = SteerSpec(vector, (1,), "all", mode="clamp")
    events = list(side_by_side(tiny_model, PROMPTS[0], spec, 2.0, 5))
    whiches = [w for w, _ in events]
    assert whiches == sorted(whiches, key=lambda w: w != "unsteered") and set(whiches) == {"unsteered", "steered"}
    final = {w: t for w, t in events}
    assert final["unsteered"] == generate_texts(tiny_model, [PROMPTS[0]], 5)[0]
    assert final["steered"] == generate_texts(tiny_model, [PROMPTS[0]], 5, spec, [2.0])[0]


def test_degeneracy_heuristics():
    assert repetition_rate("the cat the cat the cat") == pytest.approx(1 - 2 / 4)
    assert repetition_rate("Paris is the capital of France") == 0.0
    assert is_off_topic("Bananas grow on trees.", "What is the capital of France? Paris Lyon")
    assert not is_off_topic("It is Paris.", "What is the capital of France? Paris Lyon")
    assert not is_off_topic("Yes, it is.", "What is the capital of France?")  # no content words: not off-topic
    table = degeneracy(["Paris.", "", "bananas bananas bananas bananas bananas", "Paris Paris Paris Paris Paris"],
                       ["capital of France? Paris Lyon"] * 4)
    assert table["empty"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert table["off_topic"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert table["degenerate"].tolist() == [0.0, 1.0, 1.0, 1.0]


def test_steer_cli_prints_both_outputs(tiny_model_dir, tiny_model, vector, tmp_path):
    path = vector.save(tmp_path / "v.safetensors")
    runner = CliRunner()
    result = runner.invoke(app, ["steer", "--model", str(tiny_model_dir), "--vector", str(path), "--strength", "3",
                                 "--layers", "1,2", "--positions", "generated", "--prompt", "What is the capital?",
                                 "--max-new-tokens", "5"])
    assert result.exit_code == 0, result.output
    unsteered = generate_texts(tiny_model, [(Turn("user", "What is the capital?"),)], 5)[0]
    steered = generate_texts(tiny_model, [(Turn("user", "What is the capital?"),)], 5,
                             SteerSpec(vector, (1, 2), "generated"), [3.0])[0]
    assert f"[unsteered] {unsteered}" in result.output and f"[steered] {steered}" in result.output
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\n\nIs the Earth flat?\n")
    many = runner.invoke(app, ["steer", "--model", str(tiny_model_dir), "--vector", str(path), "--strength", "-2",
                               "--layers", "1", "--prompts", str(prompts), "--max-new-tokens", "3"])
    assert many.exit_code == 0, many.output
    assert many.output.count("[unsteered]") == 2 and many.output.count("[steered]") == 2
    assert "### Is the Earth flat?" in many.output
    neither = runner.invoke(app, ["steer", "--model", str(tiny_model_dir), "--vector", str(path), "--strength", "1"])
    assert neither.exit_code == 2 and "exactly one of --prompt or --prompts" in neither.output


def test_steer_cli_with_a_gate_steers_only_what_the_gate_lets_through(tiny_model_dir, tiny_model, vector, tmp_path):
    import numpy as np

    from steering.artifacts.probe_gate import ProbeGate

    path = vector.save(tmp_path / "v.safetensors")
    u = np.zeros(tiny_model.d_model, dtype=np.float32)
    u[0] = 1.0
    meta = {"model_hash": tiny_model.weights_hash}
    closed = ProbeGate(u, 0.0, float("inf"), layer=1, per="last_prompt", meta=meta).save(tmp_path / "closed.safetensors")
    opened = ProbeGate(u, 0.0, float("-inf"), layer=1, per="last_prompt", meta=meta).save(tmp_path / "open.safetensors")
    chat = (Turn("user", "What is the capital?"),)
    unsteered = generate_texts(tiny_model, [chat], 5)[0]
    steered = generate_texts(tiny_model, [chat], 5, SteerSpec(vector, (1, 2), "generated"), [6.0])[0]
    assert unsteered != steered  # so the two cases below can tell the gate's decision apart
    base = ["steer", "--model", str(tiny_model_dir), "--vector", str(path), "--strength", "6", "--layers", "1,2",
            "--positions", "generated", "--prompt", "What is the capital?", "--max-new-tokens", "5"]
    off = CliRunner().invoke(app, [*base, "--gate", str(closed)])
    assert off.exit_code == 0, off.output
    assert "no pressure" in off.output and f"[steered] {unsteered}" in off.output
    on = CliRunner().invoke(app, [*base, "--gate", str(opened)])
    assert on.exit_code == 0, on.output
    assert "pressure: steering" in on.output and f"[steered] {steered}" in on.output
    foreign = ProbeGate(u, 0.0, 0.0, layer=1, per="last_prompt", meta={"model_hash": "0" * 64})
    refused = CliRunner().invoke(app, [*base, "--gate", str(foreign.save(tmp_path / "foreign.safetensors"))])
    assert refused.exit_code == 2 and "pass --force" in refused.output
    late = ProbeGate(u, 0.0, 0.0, layer=3, per="last_prompt", meta=meta).save(tmp_path / "late.safetensors")
    after = CliRunner().invoke(app, [*base, "--gate", str(late)])
    assert after.exit_code == 2 and "after the first steered site" in after.output


def test_steer_cli_takes_strength_and_positions_from_an_export_record(tiny_model_dir, tiny_model, vector, tmp_path):
    from steering.export.native import export_native

    measured = vector.select([1, 2]).with_record(positions="generated")
    path = export_native(measured, tmp_path / "e.safetensors", "add", strength=20.0)
    base = ["steer", "--model", str(tiny_model_dir), "--vector", str(path), "--prompt", "What is the capital?",
            "--max-new-tokens", "5"]
    run = CliRunner().invoke(app, base)
    assert run.exit_code == 0, run.output
    spec = SteerSpec(measured, (1, 2), "generated")
    steered = generate_texts(tiny_model, [(Turn("user", "What is the capital?"),)], 5, spec, [20.0])[0]
    assert f"steering: {spec.describe()}, strength +20" in run.output and f"[steered] {steered}" in run.output
    overridden = CliRunner().invoke(app, [*base, "--positions", "all", "--strength", "3"])
    assert f"steering: {SteerSpec(measured, (1, 2), 'all').describe()}, strength +3" in overridden.output
    plain = CliRunner().invoke(app, [*base[:4], str(vector.save(tmp_path / "v.safetensors")), *base[5:]])
    assert plain.exit_code == 2 and "--strength" in plain.output and "v.safetensors" in plain.output
