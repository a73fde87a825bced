"""The tiny end-to-end recipe, measured: SFT cold start, then joint GRPO + InfoNCE of the tiny Qwen2.5-VL-shaped
model on the synthetic catalog, on CPU; records the mean reward and the in-batch retrieval accuracy at the
start and at the end of GRPO.

    .venv/bin/python benchmarks/grpo_tiny.py [--sft-steps 450] [--grpo-steps 300] [--out benchmarks/results/grpo_tiny.json]

Steps (the commands of configs/grpo_tiny.yaml's header, through the same Python entry points):
  1. a random tiny qwen2_5_vl model, a 200-product synthetic catalog, its SFT and GRPO datasets (train split);
  2. SFT cold start with configs/sft_tiny.yaml but full fine-tuning (`lora: false`): the random model's tied
     embeddings are tiny, so its logits stay near-uniform under LoRA (which leaves them frozen) and nothing it
     samples would be worth a reward;
  3. GRPO with configs/grpo_tiny.yaml from that output (LoRA, fresh adapter; the SFT head is loaded). Its
     generation batches hold products of one category (`hard_negatives_by: category`): with mixed batches the
     SFT head already retrieves ~0.96 in-batch and the number cannot show what GRPO adds.
  4. retrieval eval (`moon-rl eval --tasks retrieval`) of the GRPO output against the SFT output on the
     catalog's test split (products neither stage trained on; small: ~40 products).
"start" / "end" are means over the first / last `--window` GRPO steps; "trajectory" has the same means over
consecutive windows. The default window is one epoch of the GRPO data (50 steps here): single steps are
noisy (8 prompts), and with one-category batches the in-batch accuracy swings with the category (0.2 to
1.0), so only windows that see every product once compare like with like.
One intra-op thread (two threads fighting over two shared cores are several times slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
KEYS = ("reward", "rewards/format/mean", "rewards/attribute_f1/mean", "retrieval_accuracy", "contrastive_loss", "completions/mean_length")


def window_means(logs: list[dict], part: slice) -> dict[str, float | None]:
    out = {}
    for key in KEYS:
        values = [h[key] for h in logs[part] if h.get(key) is not None]
        out[key] = round(statistics.mean(values), 4) if values else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=450)
    parser.add_argument("--sft-lr", type=float, default=3e-3, help="SFT learning rate (full fine-tuning)")
    parser.add_argument("--grpo-steps", type=int, default=300)
    parser.add_argument("--window", type=int, default=None, help="steps averaged for the start and end numbers (default: one epoch)")
    parser.add_argument("--sft-set", dest="sft_sets", action="append", default=[], help="SFT config override KEY=VALUE")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="GRPO config override KEY=VALUE")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out retrieval eval of GRPO vs SFT (test split)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep models and data here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/grpo_tiny.json")
    args = parser.parse_args()

    import torch

    from data_prep.synth import SynthConfig, synth_catalog
    from data_prep.tasks import prepare_task
    from moon_rl.config_io import parse_set_overrides
    from moon_rl.trainers.grpo.config import build_grpo_configs
    from moon_rl.trainers.grpo.run import run_grpo
    from moon_rl.trainers.sft.config import build_sft_configs
    from moon_rl.trainers.sft.run import run_sft
    from moon_rl.models.tiny import make_tiny_model

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    quiet = {"report_to": "none", "save_strategy": "no", "disable_tqdm": True}
    with tempfile.TemporaryDirectory(prefix="moon-grpo-tiny-") as tmp:
        work = args.workdir or Path(tmp)
        start = time.perf_counter()
        model = make_tiny_model("qwen2_5_vl", work / "tiny-vl", seed=0, force=True)
        synth_catalog(work / "synth", SynthConfig(products=200, seed=0), force=True, progress=False)
        prepare_task("sft", work / "synth", work / "sft", progress=False)
        prepare_task("grpo", work / "synth", work / "grpo", progress=False)

        sft_overrides = {**quiet, "lora": False, "max_steps": args.sft_steps, "learning_rate": args.sft_lr, "logging_steps": 25,
                         **parse_set_overrides(args.sft_sets)}
        sft_config, sft_model = build_sft_configs(ROOT / "configs/sft_tiny.yaml", sft_overrides, model=str(model), output_dir=str(work / "sft-tiny"))
        sft_start = time.perf_counter()
        sft = run_sft(sft_config, sft_model, work / "sft")
        if sft["interrupted"]:  # a graceful stop (SIGINT/SIGTERM) is not a measurement
            sys.exit("SFT was interrupted; no results written")
        sft_seconds = time.perf_counter() - sft_start

        grpo_overrides = {**quiet, "max_steps": args.grpo_steps, "logging_steps": 1, **parse_set_overrides(args.sets)}
        config, model_args = build_grpo_configs(ROOT / "configs/grpo_tiny.yaml", grpo_overrides, model=str(work / "sft-tiny"), output_dir=str(work / "grpo-tiny"))
        grpo_start = time.perf_counter()
        if run_grpo(config, model_args, work / "grpo")["interrupted"]:
            sys.exit("GRPO was interrupted; no results written")
        grpo_seconds = time.perf_counter() - grpo_start
        logs = [h for h in json.loads((work / "grpo-tiny/trainer_state.json").read_text())["log_history"] if "reward" in h]
        held_out = None
        if not args.no_eval:  # the same question on products neither stage trained on
            from moon_rl.eval.run import EvalConfig, run_eval

            metrics = run_eval(EvalConfig(model=str(work / "grpo-tiny"), baselines=[str(work / "sft-tiny")], data=str(work / "synth"),
                                          out=str(work / "eval"), tasks=["retrieval"], batch_size=16, progress=False))
            held_out = {
                "n_corpus": metrics["n_corpus"],
                **{stage: {setting: {k: round(v[k], 4) for k in ("recall@1", "recall@10", "mrr", "n_queries")}
                           for setting, v in metrics["models"][name]["retrieval"].items()}
                   for stage, name in (("grpo", "grpo-tiny"), ("sft", "sft-tiny"))},
            }
        total = time.perf_counter() - start

    if args.window is None:  # one epoch (at most half the run, so start and end never overlap)
        args.window = max(1, min(sum(h["epoch"] <= 1.0 + 1e-9 for h in logs), len(logs) // 2))
    first, last = window_means(logs, slice(0, args.window)), window_means(logs, slice(-args.window, None))
    result = {
        "command": "python benchmarks/grpo_tiny.py " + " ".join(sys.argv[1:]),
        "recipe": {"sft": f"configs/sft_tiny.yaml + lora=false, learning_rate={args.sft_lr}", "sft_overrides": parse_set_overrides(args.sft_sets), "grpo": "configs/grpo_tiny.yaml", "grpo_overrides": parse_set_overrides(args.sets)},
        "grpo_settings": {k: getattr(config, k) for k in ("num_generations", "per_device_train_batch_size", "max_completion_length", "learning_rate", "temperature", "contrastive_weight", "hard_negatives_by", "loss_type", "beta")}
        | {"rewards": config.reward_specs},
        "sft_steps": args.sft_steps,
        "sft_last_log": {k: sft["last"].get(k) for k in ("nll", "mean_token_accuracy", "entropy", "retrieval_accuracy")},
        "grpo_steps": len(logs),
        "window": args.window,
        "start": first,
        "end": last,
        "reward_up": last["reward"] > first["reward"],
        "retrieval_accuracy_up": (last["retrieval_accuracy"] or 0) > (first["retrieval_accuracy"] or 0),
        "trajectory": [{"steps": f"{i + 1}-{min(i + args.window, len(logs))}", **window_means(logs, slice(i, i + args.window))}
                       for i in range(0, len(logs), args.window)],
        "held_out_retrieval": held_out,
        "per_step": {k: [h.get(k) for h in logs] for k in ("reward", "retrieval_accuracy")},
        "seconds": {"sft": round(sft_seconds, 1), "grpo": round(grpo_seconds, 1), "total": round(total, 1)},
        "machine": machine_info(load_before),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("start", "end", "reward_up", "retrieval_accuracy_up", "seconds")}, indent=2))


if __name__ == "__main__":
    main()
