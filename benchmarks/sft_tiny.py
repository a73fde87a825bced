"""SFT cold start on the synthetic catalog with the tiny VL model: does the demo recipe learn, and how fast?
Results go to benchmarks/results/sft_tiny.json.

    .venv/bin/python benchmarks/sft_tiny.py [--steps 300] [--products 200] [--size tiny] [--config configs/sft_tiny.yaml]
        [--threads N] [--set KEY=VALUE ...]

Set-up (in a temporary folder): a tiny Qwen2.5-VL-shaped model (`moon_rl.models.tiny`), a synthetic catalog
(`data_prep.synth`), its train split prepared for SFT and its test split (held-out products and their queries)
as the evaluation set. Training uses `configs/sft_tiny.yaml` as is, except `max_steps`, a log line every step,
no checkpoints and no logging integration.

`--threads`: torch CPU threads (0 = torch's default). On a machine shared with other jobs, use 1: with 2 threads
on 2 busy cores, OpenMP threads wait on each other and a step took 12x longer in our measurements.

Recorded:
- held-out evaluation before and after training (sequential batches of 16, so a product and its queries share a
  batch): nll, contrastive loss, in-batch top-1 retrieval accuracy;
- the training log: mean of the first and last 5 logged values of loss, nll, contrastive_loss, retrieval_accuracy;
- throughput: trained tokens (prompt + completion, padding excluded) per second of training, wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sft_tiny.json"
EVAL_KEYS = ("eval_loss", "eval_nll", "eval_contrastive_loss", "eval_retrieval_accuracy")
TRAIN_KEYS = ("loss", "nll", "contrastive_loss", "retrieval_accuracy")


def mean_of(history: list[dict], key: str, which: slice) -> float | None:
    values = [h[key] for h in history if key in h][which]
    return round(sum(values) / len(values), 4) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--size", default="tiny", choices=("tiny", "small"))
    parser.add_argument("--config", default=str(ROOT / "configs" / "sft_tiny.yaml"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra config field KEY=VALUE")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from data_prep.synth import SynthConfig, synth_catalog
    from data_prep.tasks import prepare_task
    from moon_rl.config_io import parse_set_overrides
    from moon_rl.trainers.sft.config import build_sft_configs
    from moon_rl.trainers.sft.run import build_trainer, validate_sft_dataset
    from moon_rl.models.tiny import make_tiny_model

    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="moon-sft-bench-") as tmp:
        tmp = Path(tmp)
        model_dir = make_tiny_model("qwen2_5_vl", tmp / "model", size=args.size, seed=args.seed)
        catalog = tmp / "catalog"
        synth = synth_catalog(catalog, SynthConfig(products=args.products, seed=args.seed, image_size=args.image_size), progress=False)
        train = prepare_task("sft", catalog, split="train", progress=False)
        test = prepare_task("sft", catalog, split="test", progress=False)
        validate_sft_dataset(train, "train", needs_groups=True, model_takes_images=True)

        config, model_args = build_sft_configs(
            args.config,
            {
                "report_to": "none",
                "save_strategy": "no",
                "logging_steps": 1,
                "per_device_eval_batch_size": 16,
                "prediction_loss_only": True,
                **parse_set_overrides(args.sets),
            },
            model=str(model_dir),
            output_dir=str(tmp / "run"),
            max_steps=args.steps,
            seed=args.seed,
        )
        trainer = build_trainer(config, model_args, train, eval_dataset=test)
        before = trainer.evaluate()
        start = time.perf_counter()
        result = trainer.train()
        train_seconds = time.perf_counter() - start
        after = trainer.evaluate()

    history = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    report = {
        "what": "moon-rl sft, tiny VL model, synthetic catalog, configs/sft_tiny.yaml",
        "command": f"python benchmarks/sft_tiny.py --steps {args.steps} --products {args.products} --size {args.size} --threads {args.threads}" + "".join(f" --set {x}" for x in args.sets),
        "setup": {
            "model": f"qwen2_5_vl {args.size} (random init)",
            "catalog": {k: v for k, v in synth.items() if k != "out"},  # the folder is temporary
            "train_rows": len(train),
            "eval_rows": len(test),
            "steps": result.global_step,
            "batch_size": config.per_device_train_batch_size,
            "learning_rate": config.learning_rate,
            "contrastive_weight": config.contrastive_weight,
            "lora": model_args.lora,
            "lora_r": model_args.lora_r,
            "max_length": config.max_length,
        },
        "eval_before": {k: round(before[k], 4) for k in EVAL_KEYS if k in before},
        "eval_after": {k: round(after[k], 4) for k in EVAL_KEYS if k in after},
        "train_first5": {k: mean_of(history, k, slice(0, 5)) for k in TRAIN_KEYS},
        "train_last5": {k: mean_of(history, k, slice(-5, None)) for k in TRAIN_KEYS},
        "train_seconds": round(train_seconds, 1),
        "trained_tokens": int(tokens),
        "tokens_per_second": round(tokens / train_seconds, 1) if train_seconds else None,
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
