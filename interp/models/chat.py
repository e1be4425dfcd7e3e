"""Chat-template rendering, with the Llama-2 `[INST]` format for models without one.

Rendered text already contains the special tokens the model expects (BOS
included where the template writes it); tokenize it with
`add_special_tokens=False`.

Example:
    >>> from interp.tasks.example import Turn
    >>> llama2_chat([Turn("user", "Hi")], bos="<s>", eos="</s>")
    '<s>[INST] Hi [/INST]'
"""

from __future__ import annotations

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from interp.tasks.example import Turn


def llama2_chat(turns: list[Turn], bos: str, eos: str, add_generation_prompt: bool = True) -> str:
    """The Llama-2-chat format: `<s>[INST] <<SYS>>..<</SYS>> user [/INST] answer </s>`.

    With `add_generation_prompt=False` and a final assistant turn, the answer
    is left open (no closing `</s>`), so scoring can continue it.
    """
    system = ""
    rest = list(turns)
    if rest and rest[0].role == "system":
        system, rest = rest[0].content, rest[1:]
    out = ""
    for i, turn in enumerate(rest):
        if turn.role == "user":
            content = turn.content
            if system and i == 0:
                content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
            out += f"{bos}[INST] {content.strip()} [/INST]"
        elif turn.role == "assistant":
            out += f" {turn.content.strip()}"
            if i < len(rest) - 1:
                out += f" {eos}"
        else:
            raise ValueError(f"turn {i}: role {turn.role!r} is not allowed after the first turn")
    return out


def render_chat(tokenizer: PreTrainedTokenizerBase, turns: list[Turn], add_generation_prompt: bool = True) -> str:
    """Render turns with the tokenizer's chat template, or the Llama-2 fallback."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": t.role, "content": t.content} for t in turns]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert isinstance(text, str)
        return text
    return llama2_chat(turns, bos=tokenizer.bos_token or "", eos=tokenizer.eos_token or "", add_generation_prompt=add_generation_prompt)


_SENTINEL = "\x00workbench-system\x00"


def default_system_prompt(tokenizer: PreTrainedTokenizerBase) -> str:
    """The system prompt the chat template writes when the chat has none ("" when it writes none).

    Found by rendering the same chat with a sentinel system turn and without one, and reading what the
    template put where the sentinel would be.

    Example:
        >>> default_system_prompt(smollm2.tokenizer)  # doctest: +SKIP
        'You are a helpful AI assistant named SmolLM, trained by Hugging Face'
    """
    user = [Turn("user", "x")]
    plain = render_chat(tokenizer, user)
    marked = render_chat(tokenizer, [Turn("system", _SENTINEL), *user])
    head, sep, tail = marked.partition(_SENTINEL)
    if not sep or not plain.startswith(head) or not plain.endswith(tail) or len(plain) < len(head) + len(tail):
        return ""
    return plain[len(head) : len(plain) - len(tail)]


def with_instruction(default: str, instruction: str) -> str:
    """A system prompt: the model's default one (if any), then the instruction.

    Example:
        >>> with_instruction("You are a helpful assistant", "Answer truthfully.")
        'You are a helpful assistant. Answer truthfully.'
        >>> with_instruction("", "Answer truthfully.")
        'Answer truthfully.'
    """
    default, instruction = default.strip(), instruction.strip()
    if not default or not instruction:
        return default or instruction
    return f"{default}{'' if default[-1] in '.!?' else '.'} {instruction}"
