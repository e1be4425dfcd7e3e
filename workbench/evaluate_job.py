"""The `eval` job: build examples, score them, write the profile and the per-example table."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from interp.errors import InputError, check_count
from interp.models.loading import load_model
from interp.scoring.frozen import score_choices_cached
from interp.scoring.profile import ci_text, per_example, sycophancy_profile
from interp.store.atomic import atomic_path, atomic_write_json
from interp.store.runs import prepare_run_dir, record_run
from interp.tasks.example import Example
from interp.tasks.letters import as_letter_choices
from workbench.data import resolve_examples, task_examples

# questions (texts) per task so that all four run in about 5 minutes on 2 cores
DEFAULT_N = {"answer": 100, "are_you_sure": 100, "feedback": None, "mimicry": None, "caa": 100, "demo": None}


def eval_examples(tasks: str, n: int | None, data: str | None, data_format: str | None, seed: int,
                  letters: bool = False) -> list[Example]:
    """The examples to score; with `letters`, also the letter-format copy of every text-choice example
    (task renamed `<task>_letters`, so content and letter results sit side by side)."""
    if data:
        examples = resolve_examples(data, format=data_format)
        if n:  # the first n records (an A/B record is two examples sharing its pair_id)
            keep = set(list(dict.fromkeys(ex.pair_id for ex in examples))[:n])
            examples = [ex for ex in examples if ex.pair_id in keep]
    else:
        examples = []
        for task in [t.strip() for t in tasks.split(",") if t.strip()]:
            examples += task_examples(task, n if n is not None else DEFAULT_N.get(task), seed)
    if not examples:
        raise InputError("no examples to score", path="--data" if data else "--tasks",
                         expected="a file with records" if data else "comma-separated built-in tasks")
    if letters:
        examples += [replace(as_letter_choices(ex), task=f"{ex.task}_letters")
                     for ex in examples if ex.choices and not ex.answer and ex.task != "feedback"]
    return examples


def run_eval(run: str, model_spec: str, tasks: str, n: int | None, data: str | None, data_format: str | None,
             seed: int, batch_size: int, artifacts: Path | None, letters: bool = False) -> dict[str, Any]:
    check_count("--n", n)
    check_count("--batch-size", batch_size)
    if data_format is not None and not data:
        raise InputError(f"{data_format!r} given without --data", path="--format",
                         expected="--format only with --data FILE")
    examples = eval_examples(tasks, n, data, data_format, seed, letters)
    folder = prepare_run_dir(run, artifacts, "eval") / "eval"
    model = load_model(model_spec)
    start = time.perf_counter()
    scores = score_choices_cached(model, examples, batch_size=batch_size, progress=True).table
    rows = per_example(examples, scores)
    profile = sycophancy_profile(rows, seed=seed)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "scores.parquet") as tmp:
        rows.to_parquet(tmp, index=False)
    config = {"tasks": tasks, "n": n, "data": data, "format": data_format, "seed": seed, "batch_size": batch_size,
              "letters": letters}
    atomic_write_json(folder / "eval.json", {"config": config, "model": model.provenance(), "seconds": seconds,
                                             "n_examples": len(examples), "profile": profile})
    record_run(folder.parent, "eval", config, model=model.provenance(), seeds={"subset_and_bootstrap": seed})
    return {"folder": folder, "profile": profile, "rows": rows, "seconds": seconds}


def print_profile(profile: dict[str, Any]) -> None:
    console = Console(width=max(Console().width, 140))
    for task, t in profile.items():
        table = Table(title=f"{task}: accuracy and choice of the pushed answer per condition (95% CI)")
        for column in ("condition", "n", "accuracy", "chose pushed", "rating"):
            table.add_column(column)
        for cond, s in t["conditions"].items():
            table.add_row(cond, str(s["n"]), *(ci_text(s[k]) if k in s else "" for k in ("correct", "chose_pushed", "rating")))
        console.print(table)
        if t["effects"]:
            known = f" ({t['known_pairs']} pairs known at baseline, {t['unknown_pairs']} not)" if "known_pairs" in t else ""
            eff = Table(title=f"{task}: effects vs baseline{known}")
            for column in ("condition", "shift", "flip rate (known)", "control", "control shift", "deference"):
                eff.add_column(column)
            for cond, e in t["effects"].items():
                eff.add_row(cond, ci_text(e["shift"]), ci_text(e["flip_rate_known"]) if "flip_rate_known" in e else "",
                            e.get("control", ""), ci_text(e["control_shift"]) if "control_shift" in e else "",
                            ci_text(e["deference"]) if "deference" in e else "")
            console.print(eff)
