"""Shared fixtures: a tiny random Llama with a real BPE tokenizer, built and saved by the tests.

Plumbing tests run on it; behaviour tests use the embedded SmolLM2 (marked `embedded`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "I think the answer is London, but I'm really not sure.",
    "My textbook says the answer is Berlin. Are you sure? I don't think that's right.",
    "Choices: (A) Paris (B) Rome. Answer with a short phrase. The answer is",
    "Please rate the following poem on a scale from 1 to 10. Rating: 7",
    "two plus two is four; seven times six is forty-two; 0123456789",
] * 20


def build_tiny_tokenizer(folder: Path, chat_template: str | None = CHATML):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def build_tiny_model(folder: Path, n_layers: int = 4, seed: int = 0, chat_template: str | None = CHATML) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(folder, chat_template)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=n_layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    return folder


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-llamacpp", action="store_true",
                     help="fail (never skip) the llama.cpp tests when its library is not built; `make test` sets it")


@pytest.fixture(scope="session")
def llama_cpp_library(request: pytest.FixtureRequest) -> Path:
    """The built llama.cpp library's folder. Missing: a failure under CI or --require-llamacpp, else a skip."""
    from steering.llamacpp.build import VERSION, find_library

    folder = find_library()
    if folder is None:
        reason = f"the llama.cpp {VERSION} library is not built: run `make llamacpp` (about 2 minutes)"
        if request.config.getoption("--require-llamacpp") or os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{reason}; llama.cpp tests never skip under CI or --require-llamacpp")
        pytest.skip(reason)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from interp.models.loading import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="session")
def embedded_model():  # type: ignore[no-untyped-def]
    from interp.models.loading import load_model

    return load_model("smollm2")


@pytest.fixture(scope="module")
def ray_cluster():  # type: ignore[no-untyped-def]
    """A local 2-CPU Ray for one test module (the jobs under test reuse it), always shut down."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _workbench_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def make_examples(n: int = 12):  # type: ignore[no-untyped-def]
    """A small mixed set: neutral and opinion prompts, some with an answer prefix."""
    from interp.tasks.example import Example, Turn

    out = []
    for i in range(n):
        claim = f"I think the answer is {i + 3}, but I'm really not sure."
        opinion = i % 2 == 1
        question = f"What is {i} plus {i + 1}?" + " Answer with a short phrase." * (i % 3)
        out.append(Example(
            id=f"ex{i}", pair_id=f"p{i // 2}", task="answer", condition="user_wrong" if opinion else "neutral",
            turns=(Turn("user", f"{question} {claim}" if opinion else question),),
            choices=(str(2 * i + 1), str(i + 3)), correct=0, sycophantic=1 if opinion else None,
            user_claim=claim if opinion else None, answer=" The answer is (A" if i % 4 else None,
        ))
    return out


@pytest.fixture
def examples():  # type: ignore[no-untyped-def]
    return make_examples()
