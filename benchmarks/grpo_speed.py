"""Time MoonGRPOTrainer's steps against unmodified trl.GRPOTrainer in one process, interleaved.

    .venv/bin/python benchmarks/grpo_speed.py [--steps 15] [--completion-length 32] [--out benchmarks/results/grpo_speed.json]

Three trainers on the same tiny Qwen2.5-VL model, data, seed and settings (LoRA, 4 prompts x 4 rollouts per
step, images on every row so plain TRL can batch them):
  trl          trl.GRPOTrainer
  contrastive  MoonGRPOTrainer, contrastive_weight=0.5, modules off        target: <= 5% slower per step
  modules      MoonGRPOTrainer, + fusion pooling + residual enhancement    target: <= 15% slower per step
A step is what `Trainer.train` does per optimizer step: generation, scoring, loss, backward, optimizer step.
All three get the same prompts at every step (the group-packed order moon-rl's sampler draws, so the
contrastive term has positives) and take turns step by step, so a load spike on this shared machine hits
them alike; the overhead is the median over steps of the paired ratio (moon-rl step / TRL step) - 1. One intra-op thread (two threads fighting over two shared cores
are several times slower and much noisier). Short completions on purpose: generation dominates a step, so
short ones give the contrastive term its largest share (the least flattering setting for moon-rl).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from interleave import one_step, ready_for_steps
from machine import machine_info

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "trl": None,
    "contrastive": dict(contrastive_weight=0.5),
    "modules": dict(contrastive_weight=0.5, pooling="fusion", residual_enhancement=True),
}
TARGETS = {"contrastive": 0.05, "modules": 0.15}


def build_data(work: Path) -> tuple[Path, Path]:
    from data_prep.synth import SynthConfig, synth_catalog
    from data_prep.tasks import prepare_task
    from moon_rl.models.tiny import make_tiny_model

    model = make_tiny_model("qwen2_5_vl", work / "model", seed=0)
    synth_catalog(work / "catalog", SynthConfig(products=200, seed=0), progress=False)
    prepare_task("grpo", work / "catalog", work / "grpo", query_rows=False, progress=False)
    return model, work / "grpo"


def build_trainer(name: str, model_dir: Path, data_dir: Path, work: Path, args):
    from datasets import load_from_disk
    from trl import GRPOTrainer

    from moon_rl.trainers.grpo.config import MoonGRPOConfig
    from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer
    from moon_rl.models.loading import ModelArgs, load_policy, lora_config
    from reward_fns.registry import resolve_rewards

    model, processor, _ = load_policy(ModelArgs(model=str(model_dir), dtype="float32"))
    getattr(processor, "tokenizer", processor).padding_side = "left"
    rewards, weights = resolve_rewards(["format", "attribute_f1"])
    extra = VARIANTS[name] or dict(contrastive_weight=0.0)
    config = MoonGRPOConfig(
        output_dir=str(work / name), per_device_train_batch_size=16, num_generations=4,
        max_completion_length=args.completion_length, learning_rate=1e-4, max_steps=args.steps + args.warmup,
        seed=0, bf16=False, activation_checkpointing=False, report_to="none", save_strategy="no",
        logging_steps=10**6, disable_tqdm=True, reward_weights=weights, **extra,
    )
    cls = GRPOTrainer if name == "trl" else MoonGRPOTrainer
    trainer = cls(model=model, reward_funcs=rewards, args=config, processing_class=processor,
                  train_dataset=load_from_disk(str(data_dir)), peft_config=lora_config(ModelArgs(model="x", lora_r=16, lora_dropout=0.0)))
    return ready_for_steps(trainer, config.max_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per trainer first")
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/grpo_speed.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="moon-grpo-speed-") as tmp:
        work = Path(tmp)
        model_dir, data_dir = build_data(work)
        trainers = {name: build_trainer(name, model_dir, data_dir, work, args) for name in VARIANTS}
        batches = iter(trainers["contrastive"].get_train_dataloader())
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for step in range(args.warmup + args.steps):
            inputs = next(batches)
            for name, trainer in trainers.items():
                seconds = one_step(trainer, inputs)
                if step >= args.warmup:
                    times[name].append(seconds)
            print(f"step {step + 1}/{args.warmup + args.steps}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items() if t), flush=True)

    def overhead(name: str) -> float:
        return statistics.median(t / b for t, b in zip(times[name], times["trl"], strict=True)) - 1

    result = {
        "command": "python benchmarks/grpo_speed.py " + " ".join(sys.argv[1:]),
        "settings": {
            "model": "tiny qwen2_5_vl (make_tiny_model seed 0)", "data": "synthetic catalog, 200 products, rows with images",
            "per_device_train_batch_size": 16, "num_generations": 4, "max_completion_length": args.completion_length,
            "lora_r": 16, "timed_steps": args.steps, "warmup_steps": args.warmup, "torch_threads": 1,
        },
        "median_step_seconds": {n: round(statistics.median(t), 4) for n, t in times.items()},
        "mean_step_seconds": {n: round(statistics.mean(t), 4) for n, t in times.items()},
        "overhead_vs_trl": {n: round(overhead(n), 4) for n in TARGETS},
        "overhead_of_means": {n: round(statistics.mean(times[n]) / statistics.mean(times["trl"]) - 1, 4) for n in TARGETS},
        "targets": TARGETS,
        "meets_targets": {n: overhead(n) <= TARGETS[n] for n in TARGETS},
        "step_seconds": {n: [round(x, 4) for x in t] for n, t in times.items()},
        "machine": machine_info(load_before),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("median_step_seconds", "overhead_vs_trl", "meets_targets")}, indent=2))


if __name__ == "__main__":
    main()
