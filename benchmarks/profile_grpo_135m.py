"""Where a GRPO step's time goes, trl.GRPOTrainer vs MoonGRPOTrainer (contrastive on), SmolLM2-135M + LoRA:
torch.profiler over one step of each, on the same generation batch, in ONE process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_grpo_135m.py                      # L64 x G4
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_grpo_135m.py --length 128 --group 2 --checkpointing

The trainers, data and forced-length rollouts are `speed_135m.py`'s (`grpo_trainer`, `prepared`). Each side runs
`--warmup` untimed steps, then `--steps` profiled ones (turns alternate as in `interleave.take_turns`). Written to
benchmarks/results/profile_grpo_135m.json under the shape's key: per side, the CPU time of the step, of TRL's
phases (generation, scoring, log-probs, loss, backward) and of moon-rl's overrides and helpers, each wrapped here
in a `record_function` label (`REGIONS`); and the aten ops whose self CPU time differs most between the sides. The figure to read is `moon_minus_trl` (`compare`): the seconds moon-rl's own code adds, and where.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

from interleave import code_version, one_step, read_results, threads_and_command, update_results
from machine import machine_info
from speed_135m import ROOT, grpo_trainer, prepared

RESULTS = ROOT / "benchmarks" / "results" / "profile_grpo_135m.json"

# Regions labelled with `torch.profiler.record_function` (inclusive CPU time in the profile): TRL's phases (which
# moon-rl's overrides call into, so both sides pass through them) and moon-rl's own functions and overrides.
# (module, class or None, attribute, label)
REGIONS = [
    ("trl", "GRPOTrainer", "_generate_and_score_completions", "trl:_generate_and_score_completions"),
    ("trl", "GRPOTrainer", "_generate", "trl:_generate"),
    ("trl", "GRPOTrainer", "_get_per_token_logps_and_entropies", "trl:_get_per_token_logps_and_entropies"),
    ("trl", "GRPOTrainer", "_compute_loss", "trl:_compute_loss"),
    ("accelerate", "Accelerator", "backward", "backward"),
    ("moon_rl.trainers.grpo.trainer", "MoonGRPOTrainer", "_generate_and_score_completions", "moon:_generate_and_score_completions"),
    ("moon_rl.trainers.grpo.trainer", "MoonGRPOTrainer", "_compute_loss", "moon:_compute_loss"),
    ("moon_rl.trainers.grpo.trainer", "MoonGRPOTrainer", "_attach_ids", "moon:_attach_ids"),
    ("moon_rl.trainers.grpo.trainer", None, "contrastive_term", "moon:contrastive_term"),
    ("moon_rl.trainers.grpo.trainer", None, "modality_masks", "moon:modality_masks"),
    ("moon_rl.trainers.grpo.trainer", None, "log_contrastive", "moon:log_contrastive"),
]


def label_regions() -> None:
    """Wrap each of REGIONS in `torch.profiler.record_function(label)` (in this process only)."""
    import importlib

    import torch

    for module, cls, attr, label in REGIONS:
        owner = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        fn = owner.__dict__[attr] if cls else getattr(owner, attr)  # the class's own function, not an inherited one

        @functools.wraps(fn)
        def wrapped(*a, __fn=fn, __label=label, **k):
            with torch.profiler.record_function(__label):
                return __fn(*a, **k)

        setattr(owner, attr, wrapped)


def profile_turn(trainer, batch) -> tuple[float, float, list]:
    """(wall s, cpu s, key averages) of one optimizer step (`interleave.one_step`) under torch.profiler."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        wall, cpu = time.perf_counter(), time.process_time()
        one_step(trainer, batch)
        took = (time.perf_counter() - wall, time.process_time() - cpu)
    return took[0], took[1], prof.key_averages()


LABELS = {r[3] for r in REGIONS}


def summarize(events) -> dict:
    """Seconds per labelled region (inclusive CPU) and per aten op (self CPU)."""
    regions, ops = {}, {}
    for e in events:
        if e.key in LABELS:
            regions[e.key] = round(e.cpu_time_total / 1e6, 3)
        elif e.key.startswith("aten::"):
            ops[e.key] = round(e.self_cpu_time_total / 1e6, 3)
    return {"regions": regions, "ops": ops}


def average(summaries: list[dict]) -> dict:
    keys = {k: set().union(*(s[k] for s in summaries)) for k in ("regions", "ops")}
    return {k: {name: round(sum(s[k].get(name, 0.0) for s in summaries) / len(summaries), 3) for name in sorted(names)} for k, names in keys.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=64, help="max_completion_length (rollouts forced to it)")
    parser.add_argument("--group", type=int, default=4, help="num_generations")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=12, help="ops listed by |moon - trl| self CPU time")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "speed_135m")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--recompare", action="store_true", help="only recompute the comparison of the stored entries")
    args = parser.parse_args()
    if args.recompare:
        return recompare(args.out, args.top)

    import itertools

    import torch
    from datasets import load_from_disk

    command = threads_and_command("profile_grpo_135m.py")
    label_regions()
    _, grpo_dir = prepared(args.work)
    data = load_from_disk(str(grpo_dir))
    names = ["trl", "contrastive"]
    with tempfile.TemporaryDirectory(prefix="moon-profile-") as tmp:
        trainers = {n: grpo_trainer(n, data, Path(tmp), prompts=args.prompts, group=args.group, length=args.length,
                                    max_steps=args.warmup + args.steps, checkpointing=args.checkpointing) for n in names}
        batches = list(itertools.islice(iter(trainers["contrastive"].get_train_dataloader()), args.warmup + args.steps))
        runs = {n: [] for n in names}
        for step, batch in enumerate(batches):
            for n in names if step % 2 == 0 else names[::-1]:
                torch.manual_seed(step)
                if step < args.warmup:
                    one_step(trainers[n], batch)
                    continue
                wall, cpu, events = profile_turn(trainers[n], batch)
                runs[n].append({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), **summarize(events)})
                print(f"step {step + 1} {n}: wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)
    sides = {n: {"wall_s": [r["wall_s"] for r in runs[n]], "cpu_s": [r["cpu_s"] for r in runs[n]],
                 **average([{"regions": r["regions"], "ops": r["ops"]} for r in runs[n]])} for n in names}
    key = f"L{args.length}_G{args.group}_P{args.prompts}" + ("_ckpt" if args.checkpointing else "")
    result = {
        "command": command, "code": code_version(ROOT), "profiled_steps": args.steps, "warmup_steps": args.warmup,
        "sides": sides,
        "moon_minus_trl": compare(sides, args.top),
        "machine": machine_info(os.getloadavg()[0]),
    }
    update_results(args.out, key, result)
    show(result["moon_minus_trl"])


def compare(sides: dict, top: int) -> dict:
    """What moon-rl adds to a step. `own_s`: inside moon-rl's side, each override's time minus the TRL method it
    wraps (moon:_compute_loss - trl:_compute_loss, ...): the forward-side work that is moon-rl's; `own_s_inside`:
    moon-rl's labelled helpers, which run inside those overrides. The contrastive term's backward is part of
    `backward`. `same_region_s`: the same TRL region on the two sides (moon - trl): what moon-rl's inputs changed
    in TRL's own work, plus step-to-step noise. `top_ops_self_cpu`: aten ops by |moon - trl| self CPU time."""
    moon, trl = sides["contrastive"], sides["trl"]
    mr, tr = moon["regions"], trl["regions"]
    own = {name: round(mr.get(f"moon:{name}", 0.0) - mr.get(f"trl:{name}", 0.0), 3)
           for name in ("_generate_and_score_completions", "_compute_loss")}
    inside = {k: v for k, v in mr.items() if k.startswith("moon:") and k[5:] not in own}  # already counted in `own`
    same = {k: round(mr.get(k, 0.0) - tr.get(k, 0.0), 3) for k in sorted(set(mr) & set(tr))}
    ops = {op: round(moon["ops"].get(op, 0.0) - trl["ops"].get(op, 0.0), 3) for op in set(moon["ops"]) | set(trl["ops"])}
    return {
        "cpu_s_mean": round(sum(moon["cpu_s"]) / len(moon["cpu_s"]) - sum(trl["cpu_s"]) / len(trl["cpu_s"]), 3),
        "own_s": own,
        "own_s_total": round(sum(own.values()), 3),
        "own_s_inside": inside,
        "same_region_s": same,
        "trl_step_spread_s": round(max(trl["cpu_s"]) - min(trl["cpu_s"]), 3),
        "top_ops_self_cpu": dict(sorted(ops.items(), key=lambda kv: -abs(kv[1]))[:top]),
    }


def show(diff: dict) -> None:
    print(f"moon - trl: {diff['cpu_s_mean']:+.2f} s cpu per step (TRL's own steps spread {diff['trl_step_spread_s']:.2f} s)")
    print(f"  moon-rl's own work: {diff['own_s_total']:+.3f} s: " + ", ".join(f"{k} {v:+.3f}" for k, v in diff["own_s"].items())
          + " (inside them: " + ", ".join(f"{k} {v:.3f}" for k, v in diff["own_s_inside"].items()) + ")")
    print("  same TRL region, moon - trl: " + ", ".join(f"{k} {v:+.3f}" for k, v in diff["same_region_s"].items()))
    print("  ops (self CPU): " + ", ".join(f"{k} {v:+.3f}" for k, v in diff["top_ops_self_cpu"].items()))


def recompare(path: Path, top: int) -> None:
    """Recompute `moon_minus_trl` of every entry from its stored per-side figures (no new measurement)."""
    results = read_results(path)
    for key, entry in results.items():
        entry["moon_minus_trl"] = compare(entry["sides"], top)
        update_results(path, key, entry)
        print(key)
        show(entry["moon_minus_trl"])


if __name__ == "__main__":
    main()
