"""Real product text: attribute F1 after SFT vs SFT + GRPO, and matching retrieval before vs after contrastive SFT.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_data.py [--quick] [--only ae110k oamine abt-buy walmart-amazon]
        [--data /work/shared/data/real] [--out benchmarks/results/real_data.json]

Every model is a tiny random-init Qwen2 text model built from scratch (`moon_rl.models.tiny`) whose tokenizer
also learns the dataset's train titles, trained on the dataset's train split only:
- AE-110K and OA-Mine (`--source ae110k|oamine`): SFT (full fine-tune, contrastive off: every product is its
  own group) on a random subsample of the train records that have attributes, then GRPO with LoRA and the
  `attribute_f1` reward; attribute micro-F1 on a random subsample of the test split (eval task `attributes`).
  32 AE-110K train records have no attribute at all (every value "n/a"); they are left out of SFT.
- abt-buy and walmart-amazon (`--source matching`): retrieval R@1 of query offers (table A) against the
  corpus (table B, capped to whole groups, the queries' matches always kept) for the untrained base model
  (mean pooling, no head) and after contrastive SFT (full fine-tune, contrastive_weight 0.5) on the train split;
  SFT targets are built from attributes, so train offers without any (843 of 1,602 in abt-buy) are left out of SFT.
Sizes (train/test/steps/caps) are in the JSON and in RESULTS.md. Not the paper's scale: a random-init model
with a few minutes of CPU training learns the output format and some frequent values, not product knowledge.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "real_data.json"
DATASETS = {
    "ae110k": ("ae110k", "ae110k_oamine/data/processed_datasets/ae-110k"),
    "oamine": ("oamine", "ae110k_oamine/data/processed_datasets/oa-mine"),
    "abt-buy": ("matching", "product_matching/abt-buy"),
    "walmart-amazon": ("matching", "product_matching/walmart-amazon_1"),
}


def sizes(quick: bool) -> dict:
    return {
        "train_records": 200 if quick else 400, "test_records": 40 if quick else 60,
        "sft_steps": 80 if quick else 300, "grpo_steps": 6 if quick else 8, "max_new_tokens": 96 if quick else 128,
        "corpus_cap": 120 if quick else 200, "max_queries": 30 if quick else 50,
    }


def sft_overrides(steps: int, contrastive: float) -> dict:
    return {"max_steps": steps, "learning_rate": 3e-3, "lora": False, "per_device_train_batch_size": 8,
            "lr_scheduler_type": "cosine", "warmup_steps": 5, "max_length": 384, "bf16": False,
            "activation_checkpointing": False, "report_to": "none", "save_steps": 10**6, "save_total_limit": 1,
            "logging_steps": 10, "disable_tqdm": True, "contrastive_weight": contrastive}


def grpo_overrides(steps: int, completion: int) -> dict:
    return {"max_steps": steps, "learning_rate": 5e-4, "num_generations": 4, "per_device_train_batch_size": 8,
            "temperature": 1.0, "lr_scheduler_type": "constant", "loss_type": "dapo", "beta": 0.0,
            "rewards": ["attribute_f1=1.0"], "contrastive_weight": 0.0, "max_completion_length": completion,
            "bf16": False, "activation_checkpointing": False, "report_to": "none", "save_steps": 10**6,
            "save_total_limit": 1, "logging_steps": 1, "disable_tqdm": True}


def train(kind: str, model: Path, data: Path, out: Path, overrides: dict, seed: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    if kind == "sft":
        from moon_rl.trainers.sft.config import build_sft_configs
        from moon_rl.trainers.sft.run import run_sft

        cfg, margs = build_sft_configs(None, {**overrides, "seed": seed}, model=str(model), output_dir=str(out))
        summary = run_sft(cfg, margs, data)
    else:
        from moon_rl.trainers.grpo.config import build_grpo_configs
        from moon_rl.trainers.grpo.run import run_grpo

        cfg, margs = build_grpo_configs(None, {**overrides, "seed": seed}, model=str(model), output_dir=str(out))
        summary = run_grpo(cfg, margs, data)
    if summary["interrupted"]:  # a graceful stop (SIGINT/SIGTERM) is not a measurement
        sys.exit(f"{kind} was interrupted at step {summary['global_step']}; no results written")
    last = {k: v for k, v in summary.get("last", {}).items() if isinstance(v, (int, float))}
    return {"global_step": summary["global_step"], "last_logged": last}, round(time.perf_counter() - t0, 1)


def evaluate(model: Path, catalog: Path, out: Path, **cfg) -> dict:
    from moon_rl.eval.run import EvalConfig, run_eval

    metrics = run_eval(EvalConfig(model=str(model), data=str(catalog), out=str(out), batch_size=16, progress=False, **cfg))
    return next(iter(metrics["models"].values()))


def subsample_catalog(full: Path, out: Path, n_train: int, n_test: int, seed: int) -> dict:
    """Train records with attributes and test records, randomly subsampled, as a new catalog."""
    from data_prep.schema import load_catalog, write_catalog

    train_all = load_catalog(full, split="train")
    with_attrs = [p for p in train_all if p.attributes]
    test_all = [p for p in load_catalog(full, split="test") if p.attributes]
    rng = random.Random(seed)
    train = rng.sample(with_attrs, min(n_train, len(with_attrs)))
    test = rng.sample(test_all, min(n_test, len(test_all)))
    write_catalog(out, [*train, *test], {"train": [p.id for p in train], "test": [p.id for p in test]},
                  {"name": f"{full.name} subsample", "seed": seed})
    return {"train_available": len(train_all), "train_without_attributes_dropped": len(train_all) - len(with_attrs),
            "train": len(train), "test_available": len(test_all), "test": len(test)}


def attribute_benchmark(name: str, source: str, src: Path, work: Path, s: dict, seed: int) -> dict:
    from data_prep.sources import convert_source
    from data_prep.schema import load_catalog
    from data_prep.tasks import prepare_task
    from moon_rl.models.tiny import make_tiny_model

    convert_source(source, src, work / "full")
    counts = subsample_catalog(work / "full", work / "catalog", s["train_records"], s["test_records"], seed)
    titles = [p.title for p in load_catalog(work / "catalog", split="train")]
    make_tiny_model("qwen2", work / "base", size="tiny", seed=seed, extra_corpus=titles)
    for task in ("sft", "grpo"):
        prepare_task(task, work / "catalog", work / f"data-{task}", split="train", with_images=False, progress=False)
    sft, sft_s = train("sft", work / "base", work / "data-sft", work / "sft", sft_overrides(s["sft_steps"], 0.0), seed)
    grpo, grpo_s = train("grpo", work / "sft", work / "data-grpo", work / "grpo", grpo_overrides(s["grpo_steps"], s["max_new_tokens"]), seed)
    cfg = dict(tasks=["attributes"], max_products=counts["test"], max_attribute_records=counts["test"], max_new_tokens=s["max_new_tokens"])
    scores = {}
    for run in ("sft", "grpo"):
        attrs = evaluate(work / run, work / "catalog", work / f"eval-{run}", **cfg).get("attributes", {})
        scores[run] = {k: attrs.get(k) for k in ("micro_f1", "precision", "recall", "parse_rate", "n_records") if k in attrs}
    return {"task": "attributes", "sizes": counts, "sft": {**sft, "seconds": sft_s}, "grpo": {**grpo, "seconds": grpo_s},
            "attribute_f1": scores}


def retrieval_benchmark(name: str, source: str, src: Path, work: Path, s: dict, seed: int) -> dict:
    from data_prep.sources import convert_source
    from data_prep.schema import load_catalog, write_catalog
    from data_prep.tasks import prepare_task
    from moon_rl.models.tiny import make_tiny_model

    report = convert_source(source, src, work / "catalog")
    train_offers = load_catalog(work / "catalog", split="train")
    titles = [p.title for p in train_offers]
    make_tiny_model("qwen2", work / "base", size="tiny", seed=seed, extra_corpus=titles)
    # SFT targets are built from attributes: offers without any (e.g. abt-buy rows with no description/price)
    # go into a train-only copy of the catalog without them; eval uses the full catalog.
    with_attrs = [p for p in train_offers if p.attributes]
    write_catalog(work / "train-catalog", with_attrs, {"train": [p.id for p in with_attrs]}, {"name": f"{name} train offers with attributes"})
    data = prepare_task("sft", work / "train-catalog", work / "data-sft", split="train", with_images=False, progress=False)
    sft, sft_s = train("sft", work / "base", work / "data-sft", work / "sft", sft_overrides(s["sft_steps"], 0.5), seed)
    cfg = dict(tasks=["retrieval"], max_products=s["corpus_cap"], max_queries=s["max_queries"], max_new_tokens=s["max_new_tokens"])
    scores = {}
    for run in ("base", "sft"):
        # With generated reasoning (the trained path) and without (the title alone is embedded): a tiny model's
        # reasoning can be near-constant and wash the offer out of the pooled embedding.
        for suffix, extra in (("", {}), (" (no reasoning)", {"reasoning": False, "query_reasoning": False})):
            ret = evaluate(work / run, work / "catalog", work / f"eval-{run}{'-nr' if extra else ''}", **cfg, **extra)
            ret = ret.get("retrieval", {}).get("query->product", {})
            scores[run + suffix] = {k: ret.get(k) for k in ("recall@1", "recall@5", "mrr", "n_queries", "n_without_relevant") if k in ret}
    return {"task": "retrieval", "catalog_splits": report.get("splits"), "train_titles": len(titles),
            "train_without_attributes_dropped": len(train_offers) - len(with_attrs), "sft_rows": len(data),
            "sft": {**sft, "seconds": sft_s}, "retrieval": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/real"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft-steps", type=int, default=None, help="override the SFT steps of the chosen size")
    parser.add_argument("--grpo-steps", type=int, default=None, help="override the GRPO steps of the chosen size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    s = sizes(args.quick)
    s.update({k: v for k, v in (("sft_steps", args.sft_steps), ("grpo_steps", args.grpo_steps)) if v is not None})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="moon-real-") as tmp:
        for name in args.only:
            source, rel = DATASETS[name]
            src = args.data / rel
            if not src.is_dir():
                save(args, s, name, {"skipped": f"{src} not found"}, start)
                continue
            t0 = time.perf_counter()
            bench = attribute_benchmark if source != "matching" else retrieval_benchmark
            print(f"== {name}", flush=True)
            result = bench(name, source, src, Path(tmp) / name, s, args.seed)
            result["wall_seconds"] = round(time.perf_counter() - t0, 1)
            result["command"] = "OMP_NUM_THREADS=1 python benchmarks/real_data.py " + " ".join(
                [*(["--quick"] if args.quick else []), *(f"--{k.replace('_', '-')} {s[k]}" for k in ("sft_steps", "grpo_steps")), "--only", name])
            result["sizes_used"] = dict(s)
            save(args, s, name, result, start)


def save(args, sizes_used: dict, name: str, result: dict, start: float) -> None:
    """Merge one dataset's result into --out right away (re-read first: `--only` runs may share the file)."""
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    datasets = {**previous.get("datasets", {}), name: result}
    out = {
        "what": "tiny qwen2 text models trained from scratch on real product data (train splits), scored on test splits",
        "command": f"OMP_NUM_THREADS=1 python benchmarks/real_data.py{' --quick' if args.quick else ''}",
        "sizes": sizes_used, "seed": args.seed, "datasets": datasets,
        "wall_seconds": round(sum(d.get("wall_seconds", 0.0) for d in datasets.values()), 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {name} to {args.out} ({time.perf_counter() - start:.0f}s so far)", flush=True)


if __name__ == "__main__":
    main()
