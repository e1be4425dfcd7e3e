"""`workbench sweep`: methods x layers x strengths x positions, with fits and the recommended operating point."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli import ArtifactsOpt, RunOpt, app, fail, finite


def parse_floats(spec: str) -> tuple[float, ...]:
    """'-8,-4,4,8' -> (-8.0, -4.0, 4.0, 8.0).

    Example:
        >>> parse_floats("-2, 0,2.5")
        (-2.0, 0.0, 2.5)
    """
    try:
        values = tuple(float(p) for p in spec.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"--strengths {spec!r}: expected numbers like '-8,-4,4,8'") from None
    if not values:
        raise ValueError("--strengths: no values")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"--strengths {spec!r}: expected finite numbers (no nan or inf)")
    return values


def _names(spec: str | None) -> tuple[str, ...] | None:
    return None if spec is None else tuple(p.strip() for p in spec.split(",") if p.strip())


def method_names(spec: str | None) -> tuple[str, ...] | None:
    """A --method list: comma-separated, where a multi-layer method's `#8,12,16` keeps its commas.

    Example:
        >>> method_names("caa,learned#8,12,16,heads@4")
        ('caa', 'learned#8,12,16', 'heads@4')
    """
    if spec is None:
        return None
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part.isdigit() and out and "#" in out[-1] and "/" not in out[-1].rpartition("#")[2]:
            out[-1] += f",{part}"
        else:
            out.append(part)
    return tuple(out)


def parse_constraints(spec: str | None) -> dict[str, float] | None:
    """--constraints 'neutral_accuracy_drop<=0.02;kl_general<=0.02' -> {column: ceiling}.

    Example:
        >>> parse_constraints("a<=0.02; b<=1")
        {'a': 0.02, 'b': 1.0}
    """
    if spec is None:
        return None
    out: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        column, sep, value = part.partition("<=")
        try:
            ceiling = float(value)
        except ValueError:
            ceiling = float("nan")
        if not sep or not column.strip() or not math.isfinite(ceiling):
            raise ValueError(f"--constraints {part!r}: expected COLUMN<=NUMBER (e.g. neutral_accuracy_drop<=0.02)")
        out[column.strip()] = ceiling
    return out


def family_grids(spec: str | None, learned: str | None, heads: str | None) -> dict[str, tuple[float, ...]] | None:
    """--family-strengths 'learned=-1,-0.5;file=1' plus the older --learned-strengths / --heads-strengths.

    Example:
        >>> family_grids("file=-1,1", "-1", None)
        {'file': (-1.0, 1.0), 'learned': (-1.0,)}
    """
    grids: dict[str, tuple[float, ...]] = {}
    for part in (p.strip() for p in (spec or "").split(";")):
        if not part:
            continue
        name, eq, values = part.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"--family-strengths {part!r}: expected FAMILY=S,S,... (e.g. learned=-1,-0.5)")
        grids[name.strip()] = parse_floats(values)
    for family, given in (("learned", learned), ("heads", heads)):
        if given is not None:
            grids[family] = parse_floats(given)
    return grids or None


@app.command()
def sweep(
    run: RunOpt,
    model: Annotated[str | None, typer.Option("--model", help="smollm2 | .gguf | HF folder | hub id")] = None,
    method: Annotated[str | None, typer.Option(help="comma list of methods, one family each: "
                                                    "caa, opinion_minus_neutral, user_minus_third_party, "
                                                    "logreg | mean_diff | lda | pca_diff [:label_source]; "
                                                    "learned [:target] [@positions] [#L+L] [/task+task] with target "
                                                    "one of correct | known | neutral | third_party; gated and "
                                                    "selfgated (the same names: learned through the sweep's gate, "
                                                    "or a gate learned with the vector); lowrank (the same names, "
                                                    "then [%rank]); heads [@K]; "
                                                    "prompt:NAME (a system prompt, no vector; NAME one of default, "
                                                    "truthful, skeptical, independent, no_flattery) and "
                                                    "prompt:NAME+METHOD; file:PATH [#L] (a vector another tool "
                                                    "wrote: .safetensors, .gguf, .npy); e.g. learned#8,12,16, "
                                                    "prompt:skeptical+learned")] = None,
    vector: Annotated[list[Path] | None, typer.Option(help="a vector file to sweep (repeatable)")] = None,
    layers: Annotated[str | None, typer.Option(help="e.g. 6,10,14 or 8-12")] = None,
    strengths: Annotated[str | None, typer.Option(help="comma list, e.g. -8,-4,-2,2,4,8")] = None,
    positions: Annotated[str | None, typer.Option(help="comma list of all, prompt, generated")] = None,
    mode: Annotated[str | None, typer.Option(help="add | ablate | clamp")] = None,
    n_test: Annotated[int | None, typer.Option("--n-test", min=1, help="answer-task test questions")] = None,
    n_small: Annotated[int | None, typer.Option("--n-small", min=0, help="are_you_sure and mimicry test items each")] = None,
    n_feedback: Annotated[int | None, typer.Option("--n-feedback", min=0, help="feedback texts")] = None,
    n_capability: Annotated[int | None, typer.Option("--n-capability", min=0, help="fact-bank multiple-choice items")] = None,
    arc: Annotated[str | None, typer.Option(help="ARC-format JSONL for extra capability items (optional)")] = None,
    n_arc: Annotated[int | None, typer.Option("--n-arc", min=0, help="ARC items to use")] = None,
    n_train: Annotated[int | None, typer.Option("--n-train", min=1, help="training pairs per vector")] = None,
    split_seed: Annotated[int | None, typer.Option("--split-seed", min=0, max=2**32 - 1)] = None,
    test_fraction: Annotated[float | None, typer.Option("--test-fraction", min=0, max=1, callback=finite)] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=2**32 - 1, help="task, subset and bootstrap seed")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    k_batch: Annotated[int | None, typer.Option("--k-batch", min=1, help="strengths per batched pass")] = None,
    gen_prompts: Annotated[int | None, typer.Option("--gen-prompts", min=0, help="generations per cell (0: none)")] = None,
    gen_tokens: Annotated[int | None, typer.Option("--gen-tokens", min=1, max=4096)] = None,
    gain: Annotated[str | None, typer.Option(help="headline gain column (default answer_shift_gain)")] = None,
    loss: Annotated[str | None, typer.Option(help="headline loss column (default kl_all: KL on neutral and user-right prompts)")] = None,
    budget: Annotated[float | None, typer.Option(callback=finite, help="loss budget of the operating point")] = None,
    constraints: Annotated[str | None, typer.Option(
        help="further ceilings the operating point must meet, e.g. 'neutral_accuracy_drop<=0.02;"
        "user_right_known_accuracy_drop<=0.02'")] = None,
    gate: Annotated[str | None, typer.Option(help="off | both | only: also sweep each vector behind a probe gate "
                                                  "(steer only prompts where an opinion is stated)")] = None,
    gate_source: Annotated[str | None, typer.Option(
        "--gate-source", help="what gates read: suggestion (default: anybody suggests an answer) | user_opinion "
        "(the user's own)")] = None,
    gate_layer: Annotated[int | None, typer.Option(
        "--gate-layer", min=0, help="the layer every gate reads (default: each curve's first steered layer)")] = None,
    gate_fpr: Annotated[float | None, typer.Option(
        "--gate-fpr", callback=finite, min=0, max=1,
        help="share of train-side no-opinion prompts a gate may fire on; its threshold is calibrated to it "
        "(default 0.01)")] = None,
    learned_strengths: Annotated[str | None, typer.Option("--learned-strengths", help="strengths of learned vectors "
                                                          "(trained at -1), e.g. -2,-1,-0.5")] = None,
    heads_strengths: Annotated[str | None, typer.Option("--heads-strengths", help="strengths of head shifts")] = None,
    family_strengths: Annotated[str | None, typer.Option(
        "--family-strengths", help="strength grids per method family, e.g. 'file=-1,1;prompt=1' (the family's "
        "default otherwise)")] = None,
    learn_steps: Annotated[int | None, typer.Option("--learn-steps", min=1, max=100_000,
                                                    help="max optimiser steps of a learned vector")] = None,
    learn_wording: Annotated[str | None, typer.Option(
        "--learn-wording", help="training wordings of learned vectors: varied (default: hundreds built from parts) | "
        "train (14 sentences, 9 layouts) | bank (the fact bank's one sentence)")] = None,
    learn_tasks: Annotated[str | None, typer.Option("--learn-tasks", help="training mix of learned vectors, "
                                                    "e.g. answer,are_you_sure,mimicry,feedback")] = None,
    exclude_categories: Annotated[str | None, typer.Option(
        "--exclude-categories", help="fact-bank categories learned vectors never train on")] = None,
    test_categories: Annotated[str | None, typer.Option(
        "--test-categories", help="measure only on these fact-bank categories (e.g. the excluded ones)")] = None,
    test_wording: Annotated[str | None, typer.Option(
        "--test-wording", help="heldout (default: sentences and layouts nothing trains on) | dev (for tuning: also "
        "never trained on) | bank: the answer task's opinion sentences in the test set")] = None,
    quick: Annotated[bool, typer.Option(help="a few cells for the demo (~3 minutes)")] = False,
    overwrite: Annotated[bool, typer.Option(help="discard cells made with another test set or split")] = False,
    force: Annotated[bool, typer.Option(help="use vector files made on another model file")] = False,
    artifacts: ArtifactsOpt = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS", help="spread the cells over Ray workers: local (start Ray here), auto "
        "(the running cluster or $RAY_ADDRESS) or an address like head:6379; needs the `ray` extra")] = None,
    workers: Annotated[int, typer.Option(min=1, help="with --ray: workers, each loading the model once")] = 2,
    cpus_per_worker: Annotated[int, typer.Option("--cpus-per-worker", min=1, help="with --ray")] = 1,
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", min=0, callback=finite, help="with --ray")] = 0.0,
) -> None:
    """Sweep steering strengths; writes artifacts/<run>/sweep/ (cells.parquet, sweep.json, report.json, figures).

    Interrupted? Run the same command again: finished cells are skipped. Several machines: --ray
    local|auto|ADDRESS --workers N (the driver builds the vectors; the workers evaluate the cells).
    """
    from interp.capture.ray_pool import RayOptions
    from interp.sites import parse_layers
    from workbench.sweep_job import print_report, run_sweep_job, sweep_config

    if arc is not None and not Path(arc).is_file():
        fail(f"--arc {arc}: no such file (an ARC-format JSONL)")
    if arc is not None and not n_arc:
        fail("--arc needs --n-arc N (how many of its items to score)")
    config = sweep_config(quick, {
        "model": model, "methods": method_names(method), "vector_files": tuple(str(v) for v in vector) if vector else None,
        "layers": tuple(parse_layers(layers)) if layers is not None else None,
        "strengths": parse_floats(strengths) if strengths is not None else None, "positions": _names(positions),
        "mode": mode, "n_train": n_train, "split_seed": split_seed, "test_fraction": test_fraction, "seed": seed,
        "batch_size": batch_size, "k_batch": k_batch, "gen_prompts": gen_prompts, "gen_tokens": gen_tokens,
        "gain": gain, "loss": loss, "budget": budget, "force": force or None, "gate": gate,
        "gate_source": gate_source, "gate_layer": gate_layer, "gate_fpr": gate_fpr,
        "family_strengths": family_grids(family_strengths, learned_strengths, heads_strengths),
        "constraints": parse_constraints(constraints),
    }, {"n_answer": n_test, "n_are_you_sure": n_small, "n_mimicry": n_small, "n_feedback": n_feedback,
        "n_capability": n_capability, "arc_path": arc, "n_arc": n_arc, "wording": test_wording,
        "categories": _names(test_categories)},
        {"steps": learn_steps, "tasks": _names(learn_tasks), "exclude_categories": _names(exclude_categories),
         "wording": learn_wording})
    options = None if ray is None else RayOptions(
        address=ray, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    out = run_sweep_job(run, config, artifacts, overwrite, ray=options)
    print_report(out["report"])
    for warning in out["warnings"]:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"sweep: {out['ran']} cells run, {out['skipped']} already done, {out['seconds']:.0f}s; "
               f"written to {out['folder']}")
