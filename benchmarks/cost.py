"""What moon-rl costs next to plain TRL: SFT tokens/s, GRPO step time, eval embeddings/s, peak memory (RSS).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cost.py [--sft-steps 12] [--grpo-steps 3] [--out benchmarks/results/cost.json]

Each measurement runs in its own subprocess (so its peak RSS, `resource.getrusage(...).ru_maxrss`, is its own):
  sft:moon   MoonSFTTrainer, contrastive_weight 0.5     sft:trl   trl.SFTTrainer
  grpo:moon  MoonGRPOTrainer, contrastive_weight 0.5    grpo:trl  trl.GRPOTrainer
SFT: tiny Qwen2 text model, synthetic catalog (text only), LoRA r16, batch 8, max_length 512, same seed and
data (TRL gets the prompt/completion columns only); tokens/s = TRL's `num_tokens` counter over the steps after
the first, divided by their wall time. GRPO: the set-up of `benchmarks/grpo_speed.py` (tiny Qwen2.5-VL, 4
prompts x 4 rollouts, 32-token completions), a few steps each, median step time. The GRPO time ratio to quote
is `benchmarks/results/grpo_speed.json` when present (trainers interleaved step by step in one process, so load
spikes on a shared machine hit both alike); the sequential subprocess runs here give the memory and a
second, noisier ratio. Eval embeddings/s and eval RSS come from `benchmarks/results/eval_speed.json`
(`python benchmarks/eval_speed.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS_DIR = ROOT / "benchmarks" / "results"
MEASUREMENTS = ["sft:moon", "sft:trl", "grpo:moon", "grpo:trl"]


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


class StepClock:
    """TrainerCallback recording (wall time, cumulative num_tokens) at every log (logging_steps=1)."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class _CB(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "num_tokens" in logs:
                    clock.marks.append((time.perf_counter(), float(logs["num_tokens"])))

        self.marks: list[tuple[float, float]] = []
        self.callback = _CB()

    def tokens_per_second(self) -> float | None:
        if len(self.marks) < 2:
            return None
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return round((n1 - n0) / (t1 - t0), 1)


def measure_sft(which: str, work: Path, steps: int) -> dict:
    from datasets import load_from_disk

    from data_prep.synth import SynthConfig, synth_catalog
    from data_prep.tasks import prepare_task
    from moon_rl.models.tiny import make_tiny_model

    model_dir = make_tiny_model("qwen2", work / "model", seed=0)
    synth_catalog(work / "catalog", SynthConfig(products=150, seed=0), progress=False)
    prepare_task("sft", work / "catalog", work / "data", split="train", with_images=False, progress=False)
    data = load_from_disk(str(work / "data"))
    common = dict(output_dir=str(work / "out"), per_device_train_batch_size=8, max_steps=steps, learning_rate=1e-3,
                  max_length=512, bf16=False, report_to="none", save_strategy="no", logging_steps=1, seed=0,
                  lr_scheduler_type="constant", disable_tqdm=True)
    clock = StepClock()
    if which == "moon":
        from moon_rl.trainers.sft.config import build_sft_configs
        from moon_rl.trainers.sft.run import build_trainer

        cfg, margs = build_sft_configs(None, {**common, "contrastive_weight": 0.5, "activation_checkpointing": False,
                                              "lora_r": 16, "lora_dropout": 0.0}, model=str(model_dir), output_dir=common["output_dir"])
        trainer = build_trainer(cfg, margs, data, callbacks=[clock.callback])
    else:
        from trl import SFTConfig, SFTTrainer

        from moon_rl.models.loading import ModelArgs, load_policy, lora_config

        margs = ModelArgs(model=str(model_dir), lora_r=16, lora_dropout=0.0)
        model, processor, _ = load_policy(margs)
        plain = data.select_columns(["prompt", "completion"])
        trainer = SFTTrainer(model=model, args=SFTConfig(**common, gradient_checkpointing=False), train_dataset=plain,
                             processing_class=processor, peft_config=lora_config(margs), callbacks=[clock.callback])
    start = time.perf_counter()
    trainer.train()
    return {"steps": steps, "train_seconds": round(time.perf_counter() - start, 2), "tokens_per_second": clock.tokens_per_second(),
            "tokens": clock.marks[-1][1] if clock.marks else None, "rows": len(data)}


def measure_grpo(which: str, work: Path, steps: int) -> dict:
    import grpo_speed

    args = argparse.Namespace(steps=steps, warmup=1, completion_length=32)
    model_dir, data_dir = grpo_speed.build_data(work)
    trainer, batches = grpo_speed.build_trainer("trl" if which == "trl" else "contrastive", model_dir, data_dir, work, args)
    times = [grpo_speed.one_step(trainer, batches) for _ in range(args.warmup + steps)][args.warmup:]
    return {"steps": steps, "median_step_seconds": round(statistics.median(times), 3), "step_seconds": [round(t, 3) for t in times]}


def worker(measurement: str, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    kind, which = measurement.split(":")
    with tempfile.TemporaryDirectory(prefix="moon-cost-") as tmp:
        result = (measure_sft if kind == "sft" else measure_grpo)(which, Path(tmp), steps)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def read_json(name: str) -> dict | None:
    path = RESULTS_DIR / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=12)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=MEASUREMENTS, default=MEASUREMENTS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "cost.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        steps = args.sft_steps if args.worker.startswith("sft") else args.grpo_steps
        args.worker_out.write_text(json.dumps(worker(args.worker, steps)) + "\n", encoding="utf-8")
        return

    start = time.perf_counter()
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    runs = dict(previous.get("runs", {}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="moon-cost-") as tmp:
        for m in args.only:
            out = Path(tmp) / (m.replace(":", "_") + ".json")
            cmd = [sys.executable, __file__, "--worker", m, "--worker-out", str(out),
                   "--sft-steps", str(args.sft_steps), "--grpo-steps", str(args.grpo_steps)]
            print(f"== {m}", flush=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                runs[m] = {"error": proc.stderr[-1500:]}
                print(proc.stderr[-1500:], flush=True)
                continue
            runs[m] = json.loads(out.read_text(encoding="utf-8"))
            print(json.dumps(runs[m]), flush=True)

    def ratio(a: str, b: str, key: str):
        x, y = runs.get(a, {}).get(key), runs.get(b, {}).get(key)
        return round(x / y, 3) if x and y else None

    grpo_speed = read_json("grpo_speed.json")
    eval_speed = read_json("eval_speed.json")
    result = {
        "what": "moon-rl trainers vs plain TRL on tiny models, CPU, one torch thread",
        "command": "OMP_NUM_THREADS=1 python benchmarks/cost.py " + " ".join(sys.argv[1:]),
        "runs": runs,
        "sft_tokens_per_second_ratio_moon_over_trl": ratio("sft:moon", "sft:trl", "tokens_per_second"),
        "grpo_step_time_ratio_moon_over_trl_sequential": ratio("grpo:moon", "grpo:trl", "median_step_seconds"),
        "grpo_speed": grpo_speed,
        "eval_speed": eval_speed,
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {result['wall_seconds']}s")


if __name__ == "__main__":
    main()
