"""moon-rl's trainers against TRL's on the real SmolLM2-135M-Instruct + LoRA: SFT tokens/s, GRPO step time, and
how GRPO step time scales with completion length and group size. Trainers take turns step by step in ONE process.

    OMP_NUM_THREADS=1 nohup nice -n 5 .venv/bin/python benchmarks/speed_135m.py > runs/speed_135m.log 2>&1 &
    .venv/bin/python benchmarks/speed_135m.py --phases scaling --scaling-lengths 64 128 --force   # redo some cells

Needs `runs/models/smollm2-135m-instruct` (`moon-rl models get smollm2-135m-instruct`) and the abt-buy catalog
prepared as SFT and GRPO data (built into `--work` on the first run with `moon-rl data prepare`'s own functions).
Results: benchmarks/results/speed_135m.json, one entry per finished phase and per scaling cell (a re-run skips
what is there unless --force), and the ratio rows in benchmarks/results/ratios.json (`ratios.record`).

Phases (each contender gets the same rows at every step; `interleave.take_turns` reverses the turn order every
other step, so a load spike on this shared machine hits all alike; a figure is the median of paired ratios):
- sft: trl.SFTTrainer, MoonSFTTrainer contrastive_weight=0.5 (pooling 'mean': hidden states captured from TRL's
  own forward), and the same with pooling 'input' (a short extra forward of each row's title, the 135M recipes'
  setting; an extra row). A turn = collate the rows with the trainer's own collator + one optimizer step. The
  rows are the same, so tokens (TRL's `num_tokens`: attended tokens) are equal and tokens/s ratio = time ratio^-1.
- grpo: trl.GRPOTrainer, MoonGRPOTrainer contrastive (mean), contrastive (input), and contrastive + fusion
  pooling + residual enhancement; the GRPO recipe's shape (4 prompts x 2 rollouts, 64 tokens, DAPO, beta 0).
- scaling: trl vs moon contrastive (mean) for completion length x group size; 2 prompts per step and few steps
  (2 timed + 1 warm-up by default: a table cheap enough for 2 CPU cores, so each cell is noisier than the rows
  above); no activation checkpointing unless `--scaling-checkpointing` (both sides; the 256-token x 8-rollout
  cell needs it to fit this machine's 24 GiB). Each cell records whether checkpointing ran, read off the models.
Measure: every turn's wall time and CPU time (`time.process_time`) are kept; the ratio rows use CPU time, the
wall-time ratio is recorded beside it. With one torch thread per process, a turn's CPU time is its wall time on
an idle core; on this shared 2-core machine (load often 2-4) the wall time of a 20-40 s step also holds whatever
the other jobs took, which paired turns only partly cancel.
Departures from a real run, all applied to both sides: every rollout is forced to `max_completion_length`
(`generation_kwargs.min_new_tokens`), so the two sides generate the same number of tokens at every step and the
length column means what it says; the sampling seed is reset to the same value before each contender's turn;
no activation checkpointing (the SFT recipe turns it on for memory; it would slow both sides alike).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import sys
import tempfile
from pathlib import Path

from interleave import code_version, one_step, paired_ratio, read_results, ready_for_steps, take_turns, threads_and_command, time_summary, update_results
from machine import machine_info
from ratios import PATH as RATIOS
from ratios import record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "speed_135m.json"
MODEL = ROOT / "runs" / "models" / "smollm2-135m-instruct"
ABT_BUY = ROOT.parent / "shared" / "data" / "real" / "product_matching" / "abt-buy"
SEED = 0

SFT_VARIANTS = {"trl": None, "contrastive": dict(contrastive_weight=0.5), "input": dict(contrastive_weight=0.5, pooling="input")}
# merged_rollouts off: these rows are the cost of the contrastive term and modules against TRL's step, so the
# rollouts run as TRL's do (the merged-adapter rollouts are measured on their own by benchmarks/rollout_speed.py).
GRPO_VARIANTS = {
    "trl": None,
    "contrastive": dict(contrastive_weight=0.5, merged_rollouts=False),
    "input": dict(contrastive_weight=0.5, pooling="input", merged_rollouts=False),
    "modules": dict(contrastive_weight=0.5, pooling="fusion", residual_enhancement=True, merged_rollouts=False),
}
REWARDS = ["format=0.5", "attribute_f1=1.0"]  # configs/grpo_smollm2_matching.yaml
FIGURES = {  # (phase, contender): (figure, target, direction, note)
    ("sft", "contrastive"): ("SFT tokens/s, MoonSFTTrainer (contrastive on) / trl.SFTTrainer", 0.97, ">=", None),
    ("sft", "input"): ("SFT tokens/s, MoonSFTTrainer (contrastive on, pooling input) / trl.SFTTrainer", 0.97, ">=", "extra row"),
    ("grpo", "contrastive"): ("GRPO step time / trl.GRPOTrainer, contrastive on, SmolLM2-135M + LoRA", 1.02, "<=", None),
    ("grpo", "modules"): ("same, with fusion + residual enhancement", 1.05, "<=", None),
    ("grpo", "input"): ("GRPO step time / trl.GRPOTrainer, contrastive on, pooling input, SmolLM2-135M + LoRA", 1.02, "<=", "extra row"),
}
EXTRA_NOTE = "extra row: pooling 'input' (what the 135M recipes use), not one of the issue's five targets"


# ---- data ---------------------------------------------------------------------------------------------


def prepared(work: Path) -> tuple[Path, Path]:
    """(sft, grpo) dataset folders from the abt-buy catalog, built once into `work` (`moon-rl data prepare`)."""
    from data_prep.tasks import prepare_task

    catalog, sft, grpo = work / "abt-buy", work / "sft", work / "grpo"
    if not (catalog / "products.jsonl").is_file():
        from data_prep.sources import convert_source

        convert_source("matching", ABT_BUY, catalog)
    if not sft.is_dir():
        prepare_task("sft", catalog, sft, with_images=False, empty_targets=True, progress=False)
    if not grpo.is_dir():
        prepare_task("grpo", catalog, grpo, with_images=False, progress=False)
    return sft, grpo


# ---- trainers -----------------------------------------------------------------------------------------


def model_and_tokenizer():
    from moon_rl.models import ModelArgs, load_policy, lora_config

    margs = ModelArgs(model=str(MODEL), dtype="float32", lora_r=16, lora_alpha=32, lora_dropout=0.0)
    model, tokenizer, _ = load_policy(margs)
    return model, tokenizer, lora_config(margs)


def common_fields(out: Path, max_steps: int) -> dict:
    return dict(output_dir=str(out), max_steps=max_steps, lr_scheduler_type="constant", seed=SEED, bf16=False,
                activation_checkpointing=False, report_to="none", save_strategy="no", logging_steps=10**6, disable_tqdm=True)


def sft_trainer(name: str, data, work: Path, args):
    from trl import SFTConfig, SFTTrainer

    from moon_rl.trainers import MoonSFTConfig, MoonSFTTrainer

    model, tokenizer, peft = model_and_tokenizer()
    fields = dict(common_fields(work / f"sft-{name}", args.sft_steps + args.warmup), per_device_train_batch_size=args.sft_batch,
                  max_length=args.sft_max_length, learning_rate=2e-4, completion_only_loss=True)
    extra = SFT_VARIANTS[name]
    config = SFTConfig(**fields) if extra is None else MoonSFTConfig(**fields, **extra)
    cls = SFTTrainer if extra is None else MoonSFTTrainer
    trainer = cls(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=peft)
    return ready_for_steps(trainer, config.max_steps)


def grpo_trainer(name: str, data, work: Path, *, prompts: int, group: int, length: int, max_steps: int, checkpointing: bool = False):
    from trl import GRPOConfig, GRPOTrainer

    from moon_rl.trainers import MoonGRPOConfig, MoonGRPOTrainer
    from reward_fns.registry import resolve_rewards

    model, tokenizer, peft = model_and_tokenizer()
    tokenizer.padding_side = "left"
    rewards, weights = resolve_rewards(REWARDS)
    fields = dict(common_fields(work / f"grpo-{name}-L{length}-G{group}", max_steps), per_device_train_batch_size=prompts * group,
                  num_generations=group, max_completion_length=length, generation_kwargs={"min_new_tokens": length},
                  temperature=1.0, loss_type="dapo", beta=0.0, learning_rate=1e-4, reward_weights=weights)
    fields["activation_checkpointing"] = checkpointing
    extra = GRPO_VARIANTS[name]
    config = GRPOConfig(**fields) if extra is None else MoonGRPOConfig(**fields, **extra)
    cls = GRPOTrainer if extra is None else MoonGRPOTrainer
    trainer = cls(model=model, reward_funcs=rewards, args=config, processing_class=tokenizer, train_dataset=data, peft_config=peft)
    return ready_for_steps(trainer, max_steps)


def release(trainers: dict) -> None:
    trainers.clear()
    gc.collect()


# ---- phases -------------------------------------------------------------------------------------------


def sft_phase(args, sft_dir: Path, work: Path) -> dict:
    import torch
    from datasets import load_from_disk

    data = load_from_disk(str(sft_dir))
    trainers = {name: sft_trainer(name, data, work, args) for name in SFT_VARIANTS}
    # The rows of every step: the group-aware order of the moon-rl sampler (positives share a batch).
    order = list(trainers["contrastive"]._get_train_sampler(trainers["contrastive"].train_dataset))
    n = args.sft_batch
    steps = [order[i : i + n] for i in range(0, n * (args.warmup + args.sft_steps), n)]
    # What each trainer's own dataloader would hand its collator: its dataset minus the columns it does not use.
    views = {name: t._remove_unused_columns(t.train_dataset, description="training") for name, t in trainers.items()}
    tokens: list[int] = []

    def turn(name: str):
        trainer, view = trainers[name], views[name]

        def run(step: int) -> None:
            torch.manual_seed(SEED + step)
            batch = trainer.data_collator([view[i] for i in steps[step]])
            if name == "trl" and step >= args.warmup:
                tokens.append(int(batch["attention_mask"].sum()))
            one_step(trainer, batch, trainer._get_num_items_in_batch([batch], trainer.args.device))

        return run

    times = take_turns({name: turn(name) for name in trainers}, args.sft_steps, args.warmup, label="sft ")
    release(trainers)
    total = sum(tokens)
    return {
        **summaries(times),
        "tokens_per_step": tokens,
        "tokens_per_second": {m: {n: round(total / sum(t), 1) for n, t in times[m].items()} for m in times},
        "ratios": {m: {n: round(1 / paired_ratio(times[m], n, "trl"), 4) for n in times[m] if n != "trl"} for m in times},
        "settings": {"rows_per_step": n, "max_length": args.sft_max_length, "lora_r": 16, "timed_steps": args.sft_steps,
                     "warmup_steps": args.warmup, "data": "abt-buy SFT rows (--empty-targets)"},
    }


def grpo_times(names, grpo_dir: Path, work: Path, *, prompts: int, group: int, length: int, steps: int, warmup: int, label: str,
               checkpointing: bool = False):
    """Build the named GRPO trainers on one shape, give them the same generation batches, time them in turns."""
    import torch
    from datasets import load_from_disk

    data = load_from_disk(str(grpo_dir))
    trainers = {name: grpo_trainer(name, data, work, prompts=prompts, group=group, length=length, max_steps=steps + warmup,
                                   checkpointing=checkpointing) for name in names}
    applied = {name: t.model.get_base_model().is_activation_checkpointing for name, t in trainers.items()}
    if any(on != checkpointing for on in applied.values()):  # the label of a cell must be what ran
        raise RuntimeError(f"activation checkpointing asked {checkpointing}, applied {applied}")
    # Generation batches (rows repeated per rollout) in the group-packed order moon-rl's sampler draws.
    batches = list(itertools.islice(iter(trainers["contrastive"].get_train_dataloader()), steps + warmup))

    def turn(name: str):
        def run(step: int) -> None:
            torch.manual_seed(SEED + step)  # same sampling seed for each contender at this step
            one_step(trainers[name], batches[step])

        return run

    times = take_turns({name: turn(name) for name in names}, steps, warmup, label=label)
    release(trainers)
    return times


def grpo_phase(args, grpo_dir: Path, work: Path) -> dict:
    times = grpo_times(list(GRPO_VARIANTS), grpo_dir, work, prompts=args.grpo_prompts, group=args.grpo_group,
                       length=args.grpo_length, steps=args.grpo_steps, warmup=args.warmup, label="grpo ")
    return {
        **summaries(times),
        "ratios": {m: {n: round(paired_ratio(times[m], n, "trl"), 4) for n in times[m] if n != "trl"} for m in times},
        "settings": {"prompts_per_step": args.grpo_prompts, "num_generations": args.grpo_group, "max_completion_length": args.grpo_length,
                     "rollouts_forced_to_full_length": True, "loss_type": "dapo", "beta": 0.0, "rewards": REWARDS, "lora_r": 16,
                     "timed_steps": args.grpo_steps, "warmup_steps": args.warmup, "data": "abt-buy GRPO rows"},
    }


def scaling_cell(args, grpo_dir: Path, work: Path, length: int, group: int) -> dict:
    times = grpo_times(["trl", "contrastive"], grpo_dir, work, prompts=args.scaling_prompts, group=group, length=length,
                       steps=args.scaling_steps, warmup=args.scaling_warmup, label=f"scaling L{length} G{group} ",
                       checkpointing=args.scaling_checkpointing)
    return {
        "max_completion_length": length, "num_generations": group, "prompts_per_step": args.scaling_prompts,
        "timed_steps": args.scaling_steps, "warmup_steps": args.scaling_warmup, "activation_checkpointing": args.scaling_checkpointing,
        **summaries(times),
        "ratios": {m: round(paired_ratio(times[m], "contrastive", "trl"), 4) for m in times},
    }


# ---- main ---------------------------------------------------------------------------------------------


def summaries(times: dict) -> dict:
    return {"cpu_seconds": time_summary(times["cpu"]), "wall_seconds": time_summary(times["wall"])}


def record_figures(phase: str, ratios: dict, command: str, settings: dict, path: Path) -> None:
    """The figure is the CPU-time ratio (see the module docstring); the wall-time ratio rides along."""
    for (p, name), (figure, target, direction, note) in FIGURES.items():
        if p == phase and name in ratios["cpu"]:
            details = {"note": EXTRA_NOTE} if note else {}
            record(figure, ratios["cpu"][name], target, direction, command, measure="median paired ratio of per-step CPU time",
                   ratio_wall=ratios["wall"][name], model="SmolLM2-135M-Instruct + LoRA r16",
                   results="benchmarks/results/speed_135m.json", settings=settings, path=path, **details)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", nargs="+", choices=["sft", "grpo", "scaling"], default=["sft", "grpo", "scaling"])
    parser.add_argument("--force", action="store_true", help="re-measure phases / cells already in the results file")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (sft, grpo)")
    parser.add_argument("--sft-steps", type=int, default=8)
    parser.add_argument("--sft-batch", type=int, default=8)
    parser.add_argument("--sft-max-length", type=int, default=256)
    parser.add_argument("--grpo-steps", type=int, default=8)
    parser.add_argument("--grpo-prompts", type=int, default=4)
    parser.add_argument("--grpo-group", type=int, default=2)
    parser.add_argument("--grpo-length", type=int, default=64)
    parser.add_argument("--scaling-lengths", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--scaling-groups", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--scaling-prompts", type=int, default=2)
    parser.add_argument("--scaling-steps", type=int, default=2)
    parser.add_argument("--scaling-warmup", type=int, default=1)
    parser.add_argument("--scaling-checkpointing", action=argparse.BooleanOptionalAction, default=False,
                        help="activation checkpointing in the scaling cells (what the 256 x 8 cell needs to fit in 24 GiB)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "speed_135m", help="prepared data (kept between runs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--ratios", type=Path, default=RATIOS, help="where the ratio rows go (ratios.record)")
    args = parser.parse_args()

    command = threads_and_command("speed_135m.py")
    sft_dir, grpo_dir = prepared(args.work)
    done = read_results(args.out)
    with tempfile.TemporaryDirectory(prefix="moon-speed-135m-") as tmp:
        work = Path(tmp)
        for phase, fn, data_dir in (("sft", sft_phase, sft_dir), ("grpo", grpo_phase, grpo_dir)):
            if phase not in args.phases or (phase in done and not args.force):
                continue
            load = os.getloadavg()[0]
            result = {"command": command, "code": code_version(ROOT), **fn(args, data_dir, work), "machine": machine_info(load)}
            update_results(args.out, phase, result)
            record_figures(phase, result["ratios"], command, result["settings"], args.ratios)
            print(f"{phase}: {result['ratios']}", flush=True)
        if "scaling" in args.phases:
            for length, group in itertools.product(args.scaling_lengths, args.scaling_groups):
                cell = f"L{length}_G{group}"
                if cell in done.get("scaling", {}) and not args.force:
                    continue
                load = os.getloadavg()[0]
                row = {"command": command, "code": code_version(ROOT), **scaling_cell(args, grpo_dir, work, length, group), "load_average_1min_before": round(load, 2)}
                cells = {**read_results(args.out).get("scaling", {}), cell: row}
                update_results(args.out, "scaling", cells)
                print(f"scaling {cell}: ratios {row['ratios']}", flush=True)
    update_results(args.out, "machine", machine_info(os.getloadavg()[0]))


if __name__ == "__main__":
    main()
