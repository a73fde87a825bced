"""RESULTS.md sections for the real-model speed figures: the ratio rows of `results/ratios.json`
(benchmarks/ratios.py), the GRPO scaling table of `results/speed_135m.json` with the profile beside it
(`results/profile_grpo_135m.json`), `results/sft_vs_plain.json` and `results/rollout_speed.json`.
`make_results.py` calls them; tables only, no computation."""

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


def sft_vs_plain_section(data: dict | None) -> list[str]:
    """`sft_vs_plain.json`: moon-rl sft against a plain PEFT contrastive loop, R@1 at equal steps over seeds."""
    if not data or not data.get("rows"):
        return []
    lines = ["## `moon-rl sft` against a plain PEFT contrastive loop (SmolLM2-135M, abt-buy, CPU)", "",
             f"`{data['command'].strip()}`: the same batches in turns, the recipe configs/sft_smollm2_matching.yaml "
             "(pooling input, next-token term off) against transformers + PEFT only; R@1 on the full abt-buy corpus "
             "(206 queries x 1,092 offers), mean over seeds (each seed in brackets).", "",
             "| steps | plain R@1 | moon-rl R@1 | gap |", "| --- | --- | --- | --- |"]
    for r in data["rows"]:
        per = lambda v: ", ".join(f"{x:.3f}" for x in v.values())  # noqa: E731
        lines.append(f"| {r['steps']} | {r['plain_r1']:.3f} ({per(r['plain_r1_per_seed'])}) | {r['moon_r1']:.3f} ({per(r['moon_r1_per_seed'])}) | {r['gap']:+.3f} |")
    return lines + ["", f"Step time moon-rl / plain: {data['step_time_ratio']:.3f} (median paired CPU-time ratio over every "
                    f"seed's steps; wall {data.get('step_time_ratio_wall', float('nan')):.3f}).", ""]


def rollout_section(data: dict | None) -> list[str]:
    """`rollout_speed.json`: GRPO rollout new tokens/s against raw generate, and a recipe step by parts."""
    if not data or not data.get("rollouts"):
        return []
    lines = ["## GRPO rollouts and step parts (SmolLM2-135M recipe, CPU)", "",
             "New tokens/s (wall) of moon-rl's rollout step, a raw `model.generate` on the same prompts, TRL's own path, "
             "and one batched forward per token (the bound); ratios are paired medians of CPU time "
             "(`benchmarks/rollout_speed.py`).", "",
             "| rollouts | raw generate | moon-rl | TRL | bound | moon-rl / raw | moon-rl / bound |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for shape in data["rollouts"].values():
        tps, ratio = shape["new_tokens_per_second"]["wall"], shape["ratios"]["cpu"]
        lines.append(f"| {shape['prompts']} x {shape['num_generations']} x {shape['new_tokens_per_row']} tok | {tps['raw']} | {tps['moon']} | "
                     f"{tps['trl']} | {tps['bound']} | {ratio['moon_over_raw']:.3f} | {ratio['moon_over_bound']:.3f} |")
    step = data.get("step")
    if step:
        lines += ["", f"A recipe step ({step['prompts']} prompts x {step['num_generations']} rollouts x {step['max_completion_length']} "
                  "tokens, forced to full length), mean wall seconds by part:", "",
                  "| part | merged rollouts (default) | rollouts as TRL's |", "| --- | --- | --- |"]
        merged, unmerged = step["parts_mean_wall_seconds"]["merged"], step["parts_mean_wall_seconds"]["unmerged"]
        for part in merged:
            lines.append(f"| {part} | {merged[part]:.2f} | {unmerged.get(part, float('nan')):.2f} |")
        lines.append(f"| whole step (median) | {step['wall_seconds_per_step']['median']['merged']:.2f} | "
                     f"{step['wall_seconds_per_step']['median']['unmerged']:.2f} |")
    return lines + [""]
