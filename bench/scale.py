"""Benchmark: caching over 2 local Ray workers vs in-process, and the large-model path on a GPU.

(a) CPU, embedded SmolLM2: the same examples cached in-process (all threads)
    and by `--workers` local Ray workers (`--cpus-per-worker` threads each);
    throughput ratio end to end and after the workers are ready, and a byte
    comparison of the two stores (they must be identical).
(b) `--gpu`: a randomly initialised Llama-2-7B-shaped model in bfloat16 on
    CUDA; caching (all 32 `hook_resid_post` at `last_prompt`, through
    `interp.capture.collect.compute_shard`) and steered greedy generation, each as
    tokens/s and as a fraction of a bf16 matmul's throughput measured in the
    same run (model FLOPs = 2 x parameters per token, attention excluded).
    `--shape tiny --device cpu` runs the same code path on a tiny model, to
    check it without a GPU.

Prints markdown lines for bench/RESULTS.md.

Example:
    python bench/scale.py                      # (a): 256 examples, 2 workers x 1 thread vs 2 threads
    python bench/scale.py --gpu                # (b) on a CUDA machine
    python bench/scale.py --gpu --shape tiny --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.capture.collect import CaptureConfig, capture, compute_shard, resolve_config  # noqa: E402
from interp.capture.positions import Encoded  # noqa: E402
from interp.models.loading import ChatModel, load_model  # noqa: E402
from interp.store.writer import ShardRange  # noqa: E402
from interp.tasks.example import Example, Turn  # noqa: E402

SHAPES = {  # Llama-2-7B, and a tiny stand-in for a dry run
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 32, "vocab_size": 32000},
    "tiny": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 4, "vocab_size": 1000},
}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores"


def same_store(a: Path, b: Path) -> bool:
    """Every file equal byte for byte, the manifest equal except its finishing time."""
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    for name in names:
        if name == "manifest.json":
            x, y = (json.loads((d / name).read_text()) for d in (a, b))
            x.pop("finished", None), y.pop("finished", None)
            if x != y:
                return False
        elif (a / name).read_bytes() != (b / name).read_bytes():
            return False
    return True


def bench_cpu(n: int, workers: int, cpus_per_worker: int, shard_size: int, batch_size: int) -> None:
    """In-process with all threads and with 1 thread, then Ray; the Ray store is compared with the first."""
    from bench.capture import bench_examples
    from interp.capture.distributed import capture_on_ray
    from interp.capture.ray_pool import RayOptions
    from interp.models.memory import LoadRequest

    examples = bench_examples(n)
    sites, positions = "blocks.*.hook_resid_post", "last_prompt"
    config = CaptureConfig((), (), batch_size=batch_size, shard_size=shard_size)
    threads = workers * cpus_per_worker
    model = load_model("smollm2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"before: {load()}")
        for n_threads in dict.fromkeys((threads, 1)):
            torch.set_num_threads(n_threads)
            tokens = 0

            def count(_n: int, t: int) -> None:
                nonlocal tokens
                tokens += t

            t0 = time.perf_counter()
            capture(model, examples, sites, positions, Path(tmp) / f"local{n_threads}", config=config, progress=count)
            seconds = time.perf_counter() - t0
            rows.append((f"in-process, {n_threads} thread(s)", seconds, load()))
            print(f"in-process, {n_threads} thread(s): {n} examples, {tokens} tokens, {seconds:.1f} s, {load()}")
        options = RayOptions(address="local", workers=workers, cpus_per_worker=cpus_per_worker)
        out = capture_on_ray(LoadRequest("smollm2"), examples, sites, positions, Path(tmp) / "ray", config=config,
                             options=options)
        work_s = out.seconds - out.ready_seconds
        identical = same_store(Path(tmp) / f"local{threads}", Path(tmp) / "ray")
        print(f"ray: {out.seconds:.1f} s end to end, {out.ready_seconds:.1f} s until {workers} workers were ready, "
              f"{work_s:.1f} s caching; {load()}")
    shards = -(-n // shard_size)
    base = min(seconds for _, seconds, _ in rows)  # the best in-process run (1 thread wins on a loaded machine)
    print("| run | examples/s | tokens/s | ratio to the best in-process run | conditions |")
    print("| --- | --- | --- | --- | --- |")
    for name, seconds, when in rows:
        print(f"| {name} | {n / seconds:.2f} | {tokens / seconds:.0f} | {base / seconds:.2f} | {when} |")
    print(f"| Ray {workers} workers x {cpus_per_worker} thread, end to end (Ray start + model loads) | "
          f"{n / out.seconds:.2f} | {tokens / out.seconds:.0f} | {base / out.seconds:.2f} | {shards} shards of "
          f"{shard_size}, batch {batch_size} |")
    print(f"| Ray {workers} workers x {cpus_per_worker} thread, once the workers are ready | {n / work_s:.2f} | "
          f"{tokens / work_s:.0f} | {base / work_s:.2f} | stores identical bit for bit: {identical} |")


def cuda_time(fn: Callable[[], None], device: str, repeats: int) -> float:
    """Median seconds of `fn` (synchronised on CUDA)."""
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_flops(device: str, size: int, repeats: int) -> float:
    """FLOP/s of a square bf16 matmul: the ceiling the model's numbers are compared with."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    a @ b  # warm-up
    return 2 * size**3 / cuda_time(lambda: a @ b, device, repeats)


def llama_config(shape: str):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig

    return LlamaConfig(**SHAPES[shape], max_position_embeddings=4096, pad_token_id=0, eos_token_id=1,
                       bos_token_id=1, attn_implementation="sdpa")


def random_llama(shape: str, device: str) -> ChatModel:
    """A randomly initialised Llama in bf16 on `device`, wrapped as a ChatModel (no tokenizer: random ids).

    The memory estimate is checked first, as `workbench cache` does before loading.
    """
    from transformers import LlamaForCausalLM

    from interp.models.architectures import layout_for
    from interp.models.memory import MemoryCheckError, available_memory, estimate_memory

    config = llama_config(shape)
    est = estimate_memory(config, "bfloat16")
    free, where = available_memory(device)
    print(f"estimate {est.describe()}; {where}")
    if est.total_bytes > free:
        raise MemoryCheckError(f"a {shape} Llama in bf16 needs about {est.total_bytes / 1e9:.1f} GB; {where}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            hf = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    tokenizer = types.SimpleNamespace(pad_token_id=0)  # compute_shard only reads the pad id
    return ChatModel(hf, tokenizer, f"random-llama-{shape}", "random init", "random", layout_for(hf, "llama"))  # type: ignore[arg-type]


def bench_gpu(shape: str, device: str, n: int, prompt_len: int, batch_size: int, gen_batch: int, new_tokens: int,
              repeats: int) -> None:
    from interp.capture.backends import make_backend
    from steering.apply.steer_hooks import steer
    from steering.artifacts.steering_vector import SteeringVector

    model = random_llama(shape, device)
    n_params = sum(p.numel() for p in model.hf.parameters())
    ceiling = matmul_flops(device, 8192 if shape == "7b" else 512, repeats)
    print(f"{shape} Llama, {n_params / 1e9:.2f} B parameters, bf16 on {device}; bf16 matmul "
          f"{ceiling / 1e12:.1f} TFLOP/s")
    rng = np.random.default_rng(0)
    vocab = model.hf.config.vocab_size
    examples = [Example(id=f"r{i}", pair_id=f"r{i}", task="answer", condition="neutral", turns=(Turn("user", "-"),),
                        choices=("a", "b"), correct=0) for i in range(n)]
    encoded = [Encoded(tuple(int(t) for t in rng.integers(2, vocab, prompt_len)), prompt_len, ()) for _ in range(n)]
    config = resolve_config(model, "blocks.*.hook_resid_post", "last_prompt",
                            CaptureConfig((), (), batch_size=batch_size, shard_size=n))
    engine = make_backend("hooks")
    shard = ShardRange(0, 0, n)
    compute_shard(model, examples[:batch_size], encoded[:batch_size], ShardRange(0, 0, batch_size), config, engine)
    cache_s = cuda_time(lambda: compute_shard(model, examples, encoded, shard, config, engine), device, repeats)
    cache_tps = n * prompt_len / cache_s

    layers = tuple(range(model.n_layers // 3, 2 * model.n_layers // 3))
    directions = {}
    for layer in layers:
        v = rng.normal(size=model.d_model).astype(np.float32)
        directions[layer] = v / np.linalg.norm(v) * 4.0
    vector = SteeringVector(directions, method="random", d_model=model.d_model)
    ids = torch.as_tensor(rng.integers(2, vocab, (gen_batch, prompt_len)), device=device)
    mask = torch.ones_like(ids)

    def generate() -> None:
        model.hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                          do_sample=False, pad_token_id=0)

    def steered() -> None:
        with steer(model, vector, 1.0, positions="all"):
            generate()

    with torch.inference_mode():
        generate()
        steered()
        plain_s = cuda_time(generate, device, repeats)
        steer_s = cuda_time(steered, device, repeats)
    gen_tps, steer_tps = gen_batch * new_tokens / plain_s, gen_batch * new_tokens / steer_s

    def frac(tps: float) -> str:
        return f"{tps * 2 * n_params / ceiling:.1%}"

    print("| run | tokens/s | fraction of bf16 matmul FLOP/s | conditions |")
    print("| --- | --- | --- | --- |")
    print(f"| caching, {model.n_layers} resid_post sites at last_prompt | {cache_tps:.0f} | {frac(cache_tps)} | "
          f"{n} x {prompt_len} tokens, batch {batch_size}, {shape} bf16 {device}, sdpa |")
    print(f"| greedy generation, unsteered | {gen_tps:.0f} | {frac(gen_tps)} | batch {gen_batch}, "
          f"{prompt_len} + {new_tokens} tokens |")
    print(f"| greedy generation, steered (add, layers {layers[0]}-{layers[-1]}, all positions) | {steer_tps:.0f} | "
          f"{frac(steer_tps)} | overhead {steer_s / plain_s - 1:+.1%} |")
    print(f"bf16 matmul ceiling: {ceiling / 1e12:.1f} TFLOP/s; median of {repeats}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256, help="examples (CPU) or sequences (GPU)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu", action="store_true", help="(b): random 7B-shaped bf16 Llama on a GPU")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--gen-batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.gpu:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            sys.exit("--gpu needs CUDA (or --shape tiny --device cpu for a dry run of the code path)")
        bench_gpu(args.shape, args.device, args.n, args.prompt_len, args.batch_size, args.gen_batch, args.new_tokens,
                  args.repeats)
    else:
        bench_cpu(args.n, args.workers, args.cpus_per_worker, args.shard_size, args.batch_size)


if __name__ == "__main__":
    main()
