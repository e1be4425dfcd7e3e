"""`workbench steer`: unsteered and steered answers side by side, streamed token by token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from interp.models import ModelLoadError
from interp.tasks.example import ExampleFormatError, Turn, read_examples
from steering.vector import VectorMismatchError
from workbench.cli import ModelOpt, app, fail


def read_prompts(path: Path) -> list[tuple[Turn, ...]]:
    """Chats from a file: `.jsonl` of Example records (their turns) or `{"prompt": ...}` objects, else one prompt per line.

    Example:
        >>> read_prompts(Path("prompts.txt"))  # doctest: +SKIP
        [(Turn(role='user', content='Is the Earth flat?'),)]
    """
    if not path.is_file():
        raise ValueError(f"--prompts {path}: no such file")
    if path.suffix == ".jsonl":
        first = next((line for line in path.read_text().splitlines() if line.strip()), "")
        if first and "prompt" in json.loads(first) and "turns" not in json.loads(first):
            return [(Turn("user", str(json.loads(line)["prompt"])),) for line in path.read_text().splitlines()
                    if line.strip()]
        return [ex.turns for ex in read_examples(path)]
    prompts = [(Turn("user", line.strip()),) for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"--prompts {path}: holds no prompts")
    return prompts


@app.command()
def steer(
    vector: Annotated[Path, typer.Option("--vector", help="a workbench .safetensors vector (or .gguf control vector)")],
    strength: Annotated[float, typer.Option("--strength", help="multiplier of the raw vector (negative: away)")],
    model: ModelOpt = "smollm2",
    layers: Annotated[str | None, typer.Option(help="e.g. '10' or '8-12' (default: every layer of the vector)")] = None,
    positions: Annotated[str, typer.Option(help="all | prompt | generated (from the last prompt token on)")] = "all",
    mode: Annotated[str, typer.Option(help="add | ablate | clamp")] = "add",
    prompt: Annotated[str | None, typer.Option(help="one user message")] = None,
    prompts: Annotated[Path | None, typer.Option(help="a file: one prompt per line, or a .jsonl of examples")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 48,
    force: Annotated[bool, typer.Option(help="use a vector made on another model file")] = False,
    gate: Annotated[Path | None, typer.Option(help="a probe gate (.safetensors from `workbench sweep --gate`): steer "
                                                   "only prompts it reads as user pressure")] = None,
) -> None:
    """Answer each prompt unsteered and steered (greedy), streamed, side by side."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from interp.models import load_model
    from steering.gate import ProbeGate
    from steering.gating import chat_gate_scores, check_gate
    from steering.generation import side_by_side
    from steering.spec import SteerSpec
    from workbench.commands.export import parse_layers, read_vector

    if (prompt is None) == (prompts is None):
        fail("give exactly one of --prompt or --prompts")
    try:
        chats = [(Turn("user", prompt),)] if prompt is not None else read_prompts(prompts)  # type: ignore[arg-type]
        vec = read_vector(vector)
        chosen = tuple(parse_layers(layers)) if layers else tuple(vec.layers)
        probe_gate = ProbeGate.load(gate) if gate is not None else None
        spec = SteerSpec(vec, chosen, positions, mode, force, probe_gate)
        lm = load_model(model)
        vec.check_compatible(lm.d_model, lm.weights_hash, force=force)
        if probe_gate is not None:
            check_gate(probe_gate, lm, force)
    except (ExampleFormatError, ModelLoadError, VectorMismatchError, ValueError) as e:
        fail(str(e))
    console = Console()
    console.print(f"steering: {spec.describe()}, strength {strength:+g}")

    def table(question: str, texts: dict[str, str]) -> Table:
        t = Table(title=question, show_lines=True, expand=True)
        t.add_column("unsteered", ratio=1)
        t.add_column(f"steered (strength {strength:+g})", ratio=1)
        t.add_row(texts["unsteered"], texts["steered"])
        return t

    gate_on: list[bool] = []
    if probe_gate is not None:
        try:
            scores = chat_gate_scores(lm, chats, probe_gate)
        except ValueError as e:
            fail(str(e))
        gate_on = [bool(x > probe_gate.threshold) for x in scores]
    for k, turns in enumerate(chats):
        texts = {"unsteered": "", "steered": ""}
        question = turns[-1].content
        gate_line = ""
        if probe_gate is not None:
            verdict = "pressure: steering" if gate_on[k] else "no pressure: the steered answer is the unsteered one"
            gate_line = (f"gate (layer {probe_gate.layer}) score {scores[k]:+.2f} vs threshold "
                         f"{probe_gate.threshold:+.2f}: {verdict}")
        try:
            if console.is_terminal:
                if gate_line:
                    console.print(gate_line)
                with Live(table(question, texts), console=console, refresh_per_second=12) as live:
                    for which, text in side_by_side(lm, turns, spec, strength, max_new_tokens):
                        texts[which] = text
                        live.update(table(question, texts))
            else:
                # not a terminal (a pipe, a log): print each answer as it completes, one block per prompt
                typer.echo(f"\n### {question}")
                if gate_line:
                    typer.echo(gate_line)
                current = ""
                for which, text in side_by_side(lm, turns, spec, strength, max_new_tokens):
                    if which != current and current:
                        typer.echo(f"[{current}] {texts[current]}")
                    current, texts[which] = which, text
                typer.echo(f"[{current}] {texts[current]}")
        except ValueError as e:
            fail(str(e))
