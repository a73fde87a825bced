"""GRPO rollouts of the SmolLM2 recipe on transformers' generate: new tokens/s of moon-rl's rollout path against a raw
`model.generate` on the same prompts, and a GRPO step of the recipe with its parts (issue 25, part 3).

    OMP_NUM_THREADS=2 nohup .venv/bin/python benchmarks/rollout_speed.py > runs/rollout_speed.log 2>&1 &   # resumes
    .venv/bin/python benchmarks/rollout_speed.py --phases rollouts --prompts 4 16 --force

Model and data: `runs/models/smollm2-135m-instruct` (`moon-rl models get`), abt-buy GRPO rows (`moon-rl data prepare
--task grpo`, built into --work), the trainer built from configs/grpo_smollm2_matching.yaml as `moon-rl grpo` builds
it (LoRA r16 on every linear layer, G = 2, 64 new tokens, temperature 1.0, pooling input, contrastive term on).
Rollouts are forced to the full length (min_new_tokens = max_completion_length) so every contender writes the same
number of tokens.

Phase `rollouts`, per batch shape (--prompts P: P prompts x G rollouts), contenders in turns on the same prompt ids
(the rows of the trainer's own generation batches, tokenized by TRL's `_tokenize_prompts`), torch seed reset
before each turn:
- `raw`: what an engineer writes: the prompts left-padded, `model.generate(..., generation_config=the trainer's)` on
  the same PEFT model, under no_grad.
- `moon`: `MoonGRPOTrainer._generate_single_turn`, the rollout step as training runs it (LoRA merged for the
  rollouts, `merged_rollouts`).
- `trl`: `trl.GRPOTrainer._generate_single_turn` on the same trainer (TRL's path, adapter unmerged).
- `bound`: one batched forward per token and nothing else: a prefill forward, then one forward of the batch's
  next tokens per new token with a DynamicCache, argmax, on the model with the adapter merged (the least work a
  rollout can do with this model and these shapes).
Figures: new tokens/s of each; the ratio moon / raw (the paired median of raw time / moon time, CPU time, wall
beside), and moon / bound.

Phase `step`: whole GRPO steps of the recipe (`interleave.one_step` on the trainer's own generation batches),
`merged_rollouts` on and off in turns, each step split into its parts by timing the trainer's own methods:
generation (`_generate_single_turn`), rewards (`_calculate_rewards`), the no-grad log-prob / scoring passes
(`_get_per_token_logps_and_entropies` under no_grad), the loss forward (`_compute_loss`, contrastive term included),
and the rest of the step (backward, clipping, optimizer).
Results: benchmarks/results/rollout_speed.json (each phase / shape written as it finishes; a rerun skips what is
there) and the `rollout new tokens/s` row of benchmarks/results/ratios.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from interleave import code_version, one_step, paired_ratio, read_results, ready_for_steps, take_turns, threads_and_command, time_summary, update_results
from machine import machine_info
from ratios import PATH as RATIOS
from ratios import record
from speed_135m import MODEL, ROOT, prepared  # importing it also sets the offline env and puts the repo on sys.path

RESULTS = ROOT / "benchmarks" / "results" / "rollout_speed.json"
RECIPE = ROOT / "configs" / "grpo_smollm2_matching.yaml"
SEED = 0
FIGURE = "rollout new tokens/s, moon-rl GRPO rollouts (transformers generate) / raw `model.generate` on the same prompts"


def recipe_trainer(grpo_dir: Path, out: Path, prompts: int, max_steps: int, **change):
    """The recipe's MoonGRPOTrainer (as `moon-rl grpo` builds it), P prompts x G rollouts per step, forced full length."""
    from datasets import load_from_disk

    from moon_rl.trainers.grpo.config import build_grpo_configs
    from moon_rl.trainers.grpo.run import build_rewards, build_trainer

    probe, _ = build_grpo_configs(RECIPE, {"model": str(MODEL), "output_dir": str(out)})
    length, group = probe.max_completion_length, probe.num_generations
    overrides = {"model": str(MODEL), "output_dir": str(out), "max_steps": max_steps, "report_to": "none", "save_strategy": "no",
                 "logging_steps": 10**6, "disable_tqdm": True, "seed": SEED, "per_device_train_batch_size": prompts * group,
                 "generation_kwargs": {"min_new_tokens": length}, **change}
    config, model_args = build_grpo_configs(RECIPE, overrides)
    trainer = build_trainer(config, model_args, load_from_disk(str(grpo_dir)), build_rewards(config))
    return ready_for_steps(trainer, max_steps)


def generation_batches(trainer, n: int) -> list:
    return list(itertools.islice(iter(trainer.get_train_dataloader()), n))


# ---- phase: rollouts --------------------------------------------------------------------------------------


def raw_generate(trainer, prompt_ids):
    import torch
    from trl.trainer.utils import pad

    tok = trainer.processing_class
    ids = [torch.tensor(p) for p in prompt_ids]
    input_ids = pad(ids, padding_value=tok.pad_token_id, padding_side="left")
    mask = pad([torch.ones_like(t) for t in ids], padding_value=0, padding_side="left")
    with torch.no_grad():
        return trainer.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=trainer.generation_config)


def bound(trainer, prompt_ids, new_tokens: int):
    """One batched forward per token: prefill, then new_tokens - 1 single-token forwards with the cache; argmax."""
    import torch
    from transformers import DynamicCache
    from trl.trainer.utils import pad

    from moon_rl.models.merged_lora import merged_lora

    tok, model = trainer.processing_class, trainer.model
    ids = [torch.tensor(p) for p in prompt_ids]
    input_ids = pad(ids, padding_value=tok.pad_token_id, padding_side="left")
    mask = pad([torch.ones_like(t) for t in ids], padding_value=0, padding_side="left")
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad(), merged_lora(model) as merged:
        if not merged:
            raise RuntimeError("the bound needs the adapter merged")
        cache = DynamicCache(config=model.config)
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
        token, position = out.logits[:, -1].argmax(-1, keepdim=True), positions[:, -1:]
        for _ in range(new_tokens - 1):
            mask, position = torch.cat([mask, torch.ones_like(token)], dim=1), position + 1
            out = model(input_ids=token, attention_mask=mask, position_ids=position, cache=cache, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1].argmax(-1, keepdim=True)


def rollouts_shape(args, grpo_dir: Path, work: Path, prompts: int) -> dict:
    import torch
    from trl import GRPOTrainer

    trainer = recipe_trainer(grpo_dir, work / f"rollouts-P{prompts}", prompts, args.steps + args.warmup)
    length, group = trainer.args.max_completion_length, trainer.num_generations
    batches = generation_batches(trainer, args.steps + args.warmup)
    prompt_ids = [trainer._tokenize_prompts([row["prompt"] for row in batch])[0] for batch in batches]
    counts: dict[str, list[int]] = defaultdict(list)

    def turn(name: str):
        def run(step: int) -> None:
            torch.manual_seed(SEED + step)
            ids = prompt_ids[step]
            if name == "raw":
                out = raw_generate(trainer, ids)
                counts[name].append(int(out.size(0) * (out.size(1) - max(len(p) for p in ids))))
            elif name == "moon":
                completions, _ = trainer._generate_single_turn(ids, None, {}, group)
                counts[name].append(sum(len(c) for c in completions))
            elif name == "trl":
                completions, _ = GRPOTrainer._generate_single_turn(trainer, ids, None, {}, group)
                counts[name].append(sum(len(c) for c in completions))
            else:
                bound(trainer, ids, length)
                counts[name].append(len(ids) * length)

        return run

    trainer.model.train()  # as during training (TRL generates with the policy in train mode)
    names = ["raw", "moon", "trl", "bound"]
    times = take_turns({n: turn(n) for n in names}, args.steps, args.warmup, label=f"rollouts P{prompts} ")
    new_tokens = {n: counts[n][args.warmup:] for n in names}
    if len({sum(v) for v in new_tokens.values()}) != 1:
        raise RuntimeError(f"contenders wrote different numbers of tokens: { {n: sum(v) for n, v in new_tokens.items()} }")
    total = sum(new_tokens["raw"])
    return {
        "prompts": prompts, "num_generations": group, "rows": prompts * group, "new_tokens_per_row": length,
        "prompt_tokens_max": [max(len(p) for p in ids) for ids in prompt_ids[args.warmup:]],
        "timed_batches": args.steps, "warmup_batches": args.warmup,
        "new_tokens_per_second": {m: {n: round(total / sum(times[m][n]), 1) for n in names} for m in times},
        "ratios": {m: {"moon_over_raw": round(1 / paired_ratio(times[m], "moon", "raw"), 4),
                       "trl_over_raw": round(1 / paired_ratio(times[m], "trl", "raw"), 4),
                       "moon_over_bound": round(1 / paired_ratio(times[m], "moon", "bound"), 4),
                       "raw_over_bound": round(1 / paired_ratio(times[m], "raw", "bound"), 4)} for m in times},
        "cpu_seconds": time_summary(times["cpu"]), "wall_seconds": time_summary(times["wall"]),
    }


# ---- phase: step --------------------------------------------------------------------------------------------


class PartTimer:
    """Wall seconds spent in named methods of one trainer (patched on the instance), per step."""

    def __init__(self, trainer):
        import torch

        self.seconds: dict[str, float] = defaultdict(float)
        self._depth = 0

        def timed(part: str, fn, when=lambda: True):
            def wrapper(*a, **k):
                if self._depth or not when():  # nested calls count once, in the outer part
                    return fn(*a, **k)
                self._depth += 1
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    self.seconds[part] += time.perf_counter() - start
                    self._depth -= 1

            return wrapper

        trainer._generate_single_turn = timed("generation", trainer._generate_single_turn)
        trainer._calculate_rewards = timed("rewards", trainer._calculate_rewards)
        trainer._get_per_token_logps_and_entropies = timed("no-grad scoring passes", trainer._get_per_token_logps_and_entropies,
                                                           when=lambda: not torch.is_grad_enabled())
        trainer._compute_loss = timed("loss forward", trainer._compute_loss)

    def take(self) -> dict[str, float]:
        out, self.seconds = dict(self.seconds), defaultdict(float)
        return out


def step_phase(args, grpo_dir: Path, work: Path) -> dict:
    import torch

    steps = args.step_steps + args.warmup
    trainers = {"merged": recipe_trainer(grpo_dir, work / "step-merged", args.step_prompts, steps),
                "unmerged": recipe_trainer(grpo_dir, work / "step-unmerged", args.step_prompts, steps, merged_rollouts=False)}
    batches = generation_batches(trainers["merged"], steps)
    timers = {n: PartTimer(t) for n, t in trainers.items()}
    parts: dict[str, list[dict]] = {n: [] for n in trainers}

    def turn(name: str):
        def run(step: int) -> None:
            torch.manual_seed(SEED + step)
            start = time.perf_counter()
            one_step(trainers[name], batches[step])
            took = timers[name].take()
            took["rest of the step (backward, clipping, optimizer)"] = time.perf_counter() - start - sum(took.values())
            if step >= args.warmup:
                parts[name].append({k: round(v, 3) for k, v in took.items()})

        return run

    times = take_turns({n: turn(n) for n in trainers}, args.step_steps, args.warmup, label="grpo step ")
    mean_parts = {n: {k: round(sum(p[k] for p in rows) / len(rows), 3) for k in rows[0]} for n, rows in parts.items()}
    return {
        "prompts": args.step_prompts, "num_generations": trainers["merged"].num_generations,
        "max_completion_length": trainers["merged"].args.max_completion_length, "rollouts_forced_to_full_length": True,
        "timed_steps": args.step_steps, "warmup_steps": args.warmup,
        "wall_seconds_per_step": time_summary(times["wall"]), "cpu_seconds_per_step": time_summary(times["cpu"]),
        "step_time_ratio_merged_over_unmerged": {m: round(paired_ratio(times[m], "merged", "unmerged"), 4) for m in times},
        "parts_mean_wall_seconds": mean_parts, "parts_per_step": parts,
    }


# ---- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", nargs="+", choices=["rollouts", "step"], default=["rollouts", "step"])
    parser.add_argument("--prompts", type=int, nargs="+", default=[4, 16], help="rollouts phase: prompts per batch (x G rollouts)")
    parser.add_argument("--steps", type=int, default=6, help="rollouts phase: timed batches per shape")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--step-prompts", type=int, default=4, help="step phase: prompts per step (the recipe: 8 rows = 4 x G 2)")
    parser.add_argument("--step-steps", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "speed_135m", help="prepared data (shared with speed_135m.py)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    command = threads_and_command("rollout_speed.py")
    _, grpo_dir = prepared(args.work)
    with tempfile.TemporaryDirectory(prefix="moon-rollout-") as tmp:
        work = Path(tmp)
        if "rollouts" in args.phases:
            for prompts in args.prompts:
                key = f"P{prompts}"
                if key in read_results(args.out).get("rollouts", {}) and not args.force:
                    continue
                load = os.getloadavg()[0]
                row = {"command": command, "code": code_version(ROOT), **rollouts_shape(args, grpo_dir, work, prompts),
                       "load_average_1min_before": round(load, 2)}
                update_results(args.out, "rollouts", {**read_results(args.out).get("rollouts", {}), key: row})
                print(f"rollouts {key}: {row['new_tokens_per_second']['wall']} tokens/s, ratios {row['ratios']['cpu']}", flush=True)
            shapes = read_results(args.out).get("rollouts", {})
            recipe = shapes.get(f"P{args.prompts[0]}")
            if recipe is not None:
                record(FIGURE, recipe["ratios"]["cpu"]["moon_over_raw"], 1.0, ">=", recipe["command"], path=RATIOS,
                       measure="median paired ratio of per-batch CPU time (raw / moon)", ratio_wall=recipe["ratios"]["wall"]["moon_over_raw"],
                       model="SmolLM2-135M-Instruct + LoRA r16 (configs/grpo_smollm2_matching.yaml)", results="benchmarks/results/rollout_speed.json",
                       settings={k: recipe[k] for k in ("prompts", "num_generations", "rows", "new_tokens_per_row", "timed_batches")},
                       moon_over_bound=recipe["ratios"]["cpu"]["moon_over_bound"],
                       other_shapes={k: v["ratios"]["cpu"] for k, v in shapes.items() if v is not recipe})
        if "step" in args.phases and ("step" not in read_results(args.out) or args.force):
            load = os.getloadavg()[0]
            row = {"command": command, "code": code_version(ROOT), **step_phase(args, grpo_dir, work), "load_average_1min_before": round(load, 2)}
            update_results(args.out, "step", row)
            print(f"step: {row['parts_mean_wall_seconds']}", flush=True)
    update_results(args.out, "machine", machine_info(os.getloadavg()[0]))


if __name__ == "__main__":
    main()
