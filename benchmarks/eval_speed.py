"""Embedding throughput and peak memory of `moon_rl.load(...).encode` on the tiny VL model, and the memory of
chunked retrieval over a million-product corpus. Results go to benchmarks/results/eval_speed.json.

    .venv/bin/python benchmarks/eval_speed.py [--products 64] [--max-new-tokens 32] [--size tiny]
        [--corpus 1000000] [--queries 1000] [--chunk-size 8192]

Set-up (in a temporary folder): a tiny Qwen2.5-VL model, a moon-rl-shaped output on it with random LoRA and
head weights (fusion pooling + residual enhancement, `moon_rl.eval.random_run`), and a synthetic catalog.
Every phase runs in its own subprocess so that its peak RSS (`ru_maxrss`) is its own:
- encode with reasoning (greedy generation of `max_new_tokens`, then the embedding forward: the trained path),
- encode without reasoning (one forward per batch),
each with torch's default thread count and with one thread,
- `first_relevant_ranks` of `queries` random queries against `corpus` random 256-d embeddings: the peak RSS
  above the inputs shows that the Q x N score matrix is never built.
Random weights generate until `max_new_tokens` (they rarely emit end-of-sequence), so the reasoning phase
measures the worst case for that length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "eval_speed.json"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase_encode(run: str, catalog: str, products: int, batch_size: int, reasoning: bool, max_new_tokens: int, threads: int) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from data_prep.schema import load_catalog
    from moon_rl.inference import load

    records = load_catalog(catalog)[:products]
    model = load(run)
    after_load = _rss_mb()
    model.encode(records[:batch_size], batch_size=batch_size, reasoning=reasoning, max_new_tokens=max_new_tokens, catalog_dir=catalog, progress=False)  # warm-up
    start = time.perf_counter()
    emb = model.encode(records, batch_size=batch_size, reasoning=reasoning, max_new_tokens=max_new_tokens, catalog_dir=catalog, progress=False)
    seconds = time.perf_counter() - start
    assert emb.shape[0] == len(records) and torch.isfinite(emb).all()
    return {
        "records": len(records),
        "batch_size": batch_size,
        "reasoning": reasoning,
        "max_new_tokens": max_new_tokens if reasoning else 0,
        "seconds": round(seconds, 2),
        "embeddings_per_second": round(len(records) / seconds, 2),
        "rss_after_load_mb": round(after_load, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "torch_threads": torch.get_num_threads(),
    }


def phase_rank(corpus: int, queries: int, dim: int, chunk_size: int) -> dict:
    import torch
    import torch.nn.functional as F

    from moon_rl.eval.metrics import first_relevant_ranks

    gen = torch.Generator().manual_seed(0)
    c = torch.empty(corpus, dim)
    for start in range(0, corpus, 65536):  # filled in slices so that building the inputs sets no RSS peak
        c[start : start + 65536] = F.normalize(torch.randn(min(65536, corpus - start), dim, generator=gen), dim=-1)
    q = F.normalize(torch.randn(queries, dim, generator=gen), dim=-1)
    c_lab = torch.randint(0, corpus // 2, (corpus,), generator=gen)
    q_lab = c_lab[torch.randint(0, corpus, (queries,), generator=gen)]  # every query has a relevant item
    inputs = _rss_mb()
    start = time.perf_counter()
    ranks = first_relevant_ranks(q, c, q_lab, c_lab, chunk_size=chunk_size)
    seconds = time.perf_counter() - start
    assert (ranks > 0).all()
    return {
        "corpus": corpus,
        "queries": queries,
        "dim": dim,
        "chunk_size": chunk_size,
        "seconds": round(seconds, 2),
        "rss_with_inputs_mb": round(inputs, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "peak_above_inputs_mb": round(_rss_mb() - inputs, 1),
        "full_score_matrix_would_be_mb": round(queries * corpus * 4 / 2**20, 1),
        "score_block_mb": round(min(queries, 256) * chunk_size * 4 / 2**20, 1),
    }


def _subprocess(phase: str, **kwargs) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--phase-args", json.dumps(kwargs)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--corpus", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--phase-args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        fn = {"encode": phase_encode, "rank": phase_rank}[args.phase]
        print(json.dumps(fn(**json.loads(args.phase_args))))
        return

    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        setup = (
            "from moon_rl.models.tiny import make_tiny_model; from moon_rl.eval.random_run import write_random_run; "
            "from data_prep.synth import SynthConfig, synth_catalog; "
            f"b = make_tiny_model('qwen2_5_vl', r'{tmp / 'base'}', size='{args.size}'); "
            f"write_random_run(b, r'{tmp / 'run'}', pooling='fusion', residual=True, embedding_dim=256); "
            f"synth_catalog(r'{tmp / 'catalog'}', SynthConfig(products={args.products}, image_size=64), progress=False)"
        )
        subprocess.run([sys.executable, "-c", setup], check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        common = dict(run=str(tmp / "run"), catalog=str(tmp / "catalog"), products=args.products, batch_size=args.batch_size)
        encode = {}
        # torch's default (one thread per core) and a single thread: on a busy machine, intra-op threads
        # waiting for each other can cost more than they bring for a model this small.
        for threads in (0, 1):
            label = "default_threads" if threads == 0 else "1_thread"
            for reasoning in (True, False):
                key = f"encode_{'with' if reasoning else 'without'}_reasoning/{label}"
                encode[key] = _subprocess("encode", reasoning=reasoning, max_new_tokens=args.max_new_tokens, threads=threads, **common)
    ranking = _subprocess("rank", corpus=args.corpus, queries=args.queries, dim=256, chunk_size=args.chunk_size)

    result = {
        "command": "python benchmarks/eval_speed.py " + " ".join(a for a in sys.argv[1:]),
        "model": f"tiny_models qwen2_5_vl ({args.size}), random LoRA + fusion head + residual, embedding_dim 256",
        **encode,
        "chunked_ranking": ranking,
        "machine": machine_info(load_before),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
