"""`workbench steer`: unsteered and steered answers side by side, streamed token by token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interp.errors import InputError, editor_lines, json_type, parse_json, read_text
from interp.tasks.example import Example, Turn
from steering.artifacts.steerable import Steerable
from workbench.cli import ModelOpt, app, fail, finite

#: the longest prompt `steer` accepts, in characters (the model's context refuses most before this)
MAX_PROMPT_CHARS = 200_000


def _prompt(text: object, path: Path | str, line: int | None, field: str | None) -> tuple[Turn, ...]:
    if not isinstance(text, str) or not text.strip():
        shown = repr(text) if not isinstance(text, str) else "empty"
        raise InputError(f"prompt is {shown}", path=path, line=line, field=field, expected="a non-empty string")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"prompt of {len(text)} characters is too long", path=path, line=line, field=field,
                         expected=f"at most {MAX_PROMPT_CHARS} characters")
    try:
        return (Turn("user", text),)
    except ValueError as e:
        raise InputError(str(e), path=path, line=line, field=field) from None


def _jsonl_chat(record: object, path: Path, line: int) -> tuple[Turn, ...]:
    if not isinstance(record, dict):
        raise InputError(f"record is JSON {json_type(record)}", path=path, line=line,
                         expected='an object with "prompt" (or an Example record with "turns")')
    if "turns" in record:
        try:
            return Example.from_dict(record).turns
        except (ValueError, TypeError) as e:
            raise InputError(str(e), path=path, line=line) from None
    if "prompt" not in record:
        raise InputError("missing", path=path, line=line, field="prompt",
                         expected='an object with "prompt" (or an Example record with "turns")')
    return _prompt(record["prompt"], path, line, "prompt")


def read_prompts(path: Path) -> list[tuple[Turn, ...]]:
    """Chats from a file: `.jsonl` of `{"prompt": ...}` objects or Example records (their turns), else one prompt per line.

    Every bad line is named with the file and its 1-based line number (as an editor counts).

    Example:
        >>> read_prompts(Path("prompts.txt"))  # doctest: +SKIP
        [(Turn(role='user', content='Is the Earth flat?'),)]
    """
    lines = editor_lines(read_text(path, "prompts file"))
    chats = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            chats.append(_jsonl_chat(parse_json(line, path, line=lineno), path, lineno))
        else:
            chats.append(_prompt(line.strip(), path, lineno, None))
    if not chats:
        raise InputError("holds no prompts", path=path, expected="one prompt per line")
    return chats


def check_rules(vector: Steerable, layers: tuple[int, ...], positions: str, mode: str) -> None:
    """Refuse an unknown positions rule or mode, or a layer the vector lacks, before the model loads."""
    from steering.apply.interventions import MODES, POSITIONS

    if positions not in POSITIONS:
        raise InputError(f"unknown rule {positions!r}", path="--positions", expected=" | ".join(POSITIONS))
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}", path="--mode", expected=" | ".join(MODES))
    missing = [layer for layer in layers if layer not in vector.layers]
    if missing:
        raise InputError(f"the vector has no layer {missing[0]}", path="--layers",
                         expected=f"layers of the vector: {vector.layers}")


@app.command()
def steer(
    vector: Annotated[Path, typer.Option("--vector", help="a workbench .safetensors vector or low-rank edit (or .gguf "
                                                        "control vector)")],
    strength: Annotated[float | None, typer.Option("--strength", callback=finite,
                                                   help="multiplier of the raw vector (negative: away); default: "
                                                   "the strength a native export records")] = None,
    model: ModelOpt = "smollm2",
    layers: Annotated[str | None, typer.Option(help="e.g. '10' or '8-12' (default: every layer of the vector)")] = None,
    positions: Annotated[str | None, typer.Option(help="all | prompt | generated (from the last prompt token on); "
                                                       "default: the positions a native export was measured at, "
                                                       "else all")] = None,
    mode: Annotated[str, typer.Option(help="add | ablate | clamp")] = "add",
    prompt: Annotated[str | None, typer.Option(help="one user message")] = None,
    prompts: Annotated[Path | None, typer.Option(help="a file: one prompt per line, or a .jsonl of examples")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, max=4096)] = 48,
    force: Annotated[bool, typer.Option(help="use a vector made on another model file")] = False,
    gate: Annotated[Path | None, typer.Option(help="a probe gate (.safetensors from `workbench sweep --gate`): steer "
                                                   "only prompts it reads as user pressure (default: the gate a "
                                                   "native export of a gated cell carries)")] = None,
    truncate: Annotated[bool, typer.Option(help="cut the start of a prompt longer than the model's context "
                                                "(default: refuse it)")] = False,
) -> None:
    """Answer each prompt unsteered and steered (greedy), streamed, side by side."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from interp.context import fit_chat, prompt_tokens
    from interp.models.loading import load_model
    from interp.sites import parse_layers
    from steering.apply.generation import side_by_side
    from steering.apply.row_steering import row_steering
    from steering.artifacts.foreign_vectors import is_foreign
    from steering.artifacts.probe_gate import ProbeGate
    from steering.artifacts.steering_vector import SteeringVector
    from steering.artifacts.vector_file import check_vector_fits, read_intervention
    from steering.export.info import ExportError, ExportInfo
    from steering.export.native import read_export_gate, read_native_info
    from steering.methods.gates import chat_gate_scores

    def export_gate(path: Path) -> ProbeGate | None:
        return read_export_gate(path) if path.suffix == ".safetensors" and not is_foreign(path) else None

    def export_record(path: Path) -> ExportInfo | None:
        if path.suffix != ".safetensors" or is_foreign(path):
            return None
        try:
            return read_native_info(path)
        except ExportError:  # a plain saved vector: no record
            return None

    if (prompt is None) == (prompts is None):
        fail("give exactly one of --prompt or --prompts")
    chats = [_prompt(prompt, "--prompt", None, None)] if prompt is not None else read_prompts(prompts)  # type: ignore[arg-type]
    vec = read_intervention(vector)
    record = export_record(vector)  # an export says at which strength and positions it was measured
    if strength is None:
        if record is None:
            raise InputError("--strength is required for a vector that is not a native export (an export records "
                             "its measured strength)", path=vector, field="--strength")
        strength = float(record.strength)
    if positions is None:
        positions = record.positions if record is not None else "all"
    chosen = tuple(parse_layers(layers)) if layers is not None else tuple(vec.layers)
    check_rules(vec, chosen, positions, mode)
    vec.check_strength(strength)
    probe_gate = ProbeGate.load(gate) if gate is not None else export_gate(vector)  # an export may carry its gate
    # a vector reads its gate live inside steer(); an edit or head ablation is gated per prompt (strength 0 where
    # the gate, read on the unsteered prompt as the sweep reads it, is shut)
    live_gate = probe_gate if isinstance(vec, SteeringVector) else None
    try:
        spec = row_steering(vec, chosen, positions, mode, force, live_gate)
    except ValueError as e:
        raise InputError(str(e), path=vector) from None
    lm = load_model(model)
    check_vector_fits(vec, vector, lm, force)
    if probe_gate is not None:
        probe_gate.check_compatible(lm.d_model, lm.weights_hash, force)
    for k, turns in enumerate(chats):
        what = f"prompt {k + 1} (with --max-new-tokens {max_new_tokens})"
        if truncate:
            chats[k], dropped = fit_chat(lm, turns, max_new_tokens, what)
            if dropped:
                typer.echo(f"prompt {k + 1}: dropped its first {dropped} characters to fit the model's context "
                           f"of {lm.context_length} tokens (--truncate)")
        else:
            lm.check_fits(prompt_tokens(lm, turns) + max_new_tokens, f"{what}; pass --truncate to cut it")
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
        scores = chat_gate_scores(lm, chats, probe_gate)
        gate_on = probe_gate.decisions(scores)

    def prompt_strength(k: int) -> float:
        return strength if live_gate is not None or probe_gate is None or gate_on[k] else 0.0
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
                    for which, text in side_by_side(lm, turns, spec, prompt_strength(k), max_new_tokens):
                        texts[which] = text
                        live.update(table(question, texts))
            else:
                # not a terminal (a pipe, a log): print each answer as it completes, one block per prompt
                typer.echo(f"\n### {question}")
                if gate_line:
                    typer.echo(gate_line)
                current = ""
                for which, text in side_by_side(lm, turns, spec, prompt_strength(k), max_new_tokens):
                    if which != current and current:
                        typer.echo(f"[{current}] {texts[current]}")
                    current, texts[which] = which, text
                typer.echo(f"[{current}] {texts[current]}")
        except ValueError as e:
            fail(str(e))
