"""RESULTS.md sections for the real-model speed figures: the ratio rows of `results/ratios.json`
(benchmarks/ratios.py) and the GRPO scaling table of `results/speed_135m.json` with the profile beside it
(`results/profile_grpo_135m.json`). `make_results.py` calls them; tables only, no computation."""

from __future__ import annotations


def ratios_section(rows: list | None) -> list[str]:
    """`ratios.json` (benchmarks/ratios.py): one row per speed / scale figure, each against its baseline."""
    if not rows:
        return []
    lines = ["## Speed and scale ratios (real model, side by side)", "",
             "Each figure is moon-rl against its baseline in the same run (`benchmarks/results/ratios.json`).", "",
             "| figure | ratio | target | met | command |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        extra = " (extra row, not a target of the issue)" if r.get("note") else ""
        lines.append(f"| {r['figure']}{extra} | {r['ratio']:.3f} | {r['direction']} {r['target']} | {'yes' if r['met'] else 'no'} | `{r['command']}` |")
    return lines + ["", "The ratio is the median over steps (batches) of the paired per-step CPU-time ratio; each row's "
                    "wall-time ratio, settings and all step times are in the results file it names.", ""]


def scaling_section(speed: dict | None, profile: dict | None) -> list[str]:
    """GRPO step time on SmolLM2-135M + LoRA by completion length x group size (speed_135m.py's scaling cells)."""
    cells = (speed or {}).get("scaling") or {}
    if not cells:
        return []
    any_cell = next(iter(cells.values()))
    lengths = sorted({c["max_completion_length"] for c in cells.values()})
    groups = sorted({c["num_generations"] for c in cells.values()})
    lines = ["## GRPO step time as completion length and group size grow (SmolLM2-135M + LoRA, CPU)", "",
             f"`OMP_NUM_THREADS=1 python benchmarks/speed_135m.py --phases scaling` (each cell's own command in the results file): {any_cell['prompts_per_step']} prompts per step, every rollout "
             "forced to the full length, no activation checkpointing except in cells marked (ckpt); (contended): another "
             "benchmark ran on the other core (the cell's `concurrent` field), "
             f"{any_cell['timed_steps']} timed steps after {any_cell['warmup_steps']} warm-up per cell, trl.GRPOTrainer and "
             "MoonGRPOTrainer (contrastive on, pooling mean) in turns in one process, one torch thread. "
             "Cell: median CPU seconds per step, TRL / moon-rl (paired ratio). Few steps per cell: read the trend, "
             "not the third digit.", "",
             "| completion length | " + " | ".join(f"group {g}" for g in groups) + " |",
             "| --- | " + " | ".join("---" for _ in groups) + " |"]
    for length in lengths:
        row = []
        for g in groups:
            c = cells.get(f"L{length}_G{g}")
            if c is None:
                row.append("not measured")
                continue
            med = c["cpu_seconds"]["median"]
            ckpt = (" (ckpt)" if c["activation_checkpointing"] else "") + (" (contended)" if c.get("concurrent") else "")
            row.append(f"{med['trl']:.1f} / {med['contrastive']:.1f} ({c['ratios']['cpu']:.3f}){ckpt}")
        lines.append(f"| {length} | " + " | ".join(row) + " |")
    lines.append("")
    for key, prof in (profile or {}).items():
        diff = prof["moon_minus_trl"]
        own = ", ".join(f"{name} {sec:+.3f} s" for name, sec in diff["own_s"].items())
        same = ", ".join(f"{name} {sec:+.2f} s" for name, sec in diff["same_region_s"].items())
        lines += [f"Profile, `{prof['command'].strip()}` ({key}, {prof['profiled_steps']} profiled steps per side, torch.profiler): "
                  f"moon-rl minus TRL {diff['cpu_s_mean']:+.2f} CPU s per step, of which moon-rl's own overrides "
                  f"{diff['own_s_total']:+.3f} s ({own}); the same TRL regions on the two sides differ by {same} "
                  f"(TRL's own two steps differ by {diff['trl_step_spread_s']:.1f} s).", ""]
    return lines
