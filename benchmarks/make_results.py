"""Write benchmarks/RESULTS.md from every benchmarks/results/*.json (no computation beyond tables and verdicts).

    .venv/bin/python benchmarks/make_results.py [--results benchmarks/results] [--out benchmarks/RESULTS.md]

Sections: the machine (CPU model, cores, RAM, library versions), the ablation table (mean ± std over seeds)
with a verdict per MOON3.0 claim computed from the numbers, real-data results, cost next to plain TRL, then
every other results file (synthetic data speed, SFT on the tiny model, eval speed, ...). Each section gives the
command that reproduces it. A missing results file leaves its section saying how to produce it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from importlib import metadata
from pathlib import Path

from attributes_section import attributes_section
from demo_section import demo_section
from embed_section import embed_section
from pretrained_section import fmt, pretrained_section
from speed_sections import ratios_section, rollout_section, scaling_section, sft_vs_plain_section

ROOT = Path(__file__).resolve().parents[1]
KNOWN = {"demo.json", "embed.json", "ablation.json", "real_data.json", "cost.json", "grpo_tiny.json", "grpo_tiny_control.json", "pairwise_tiny.json",
         "pretrained.json", "smollm2_e2e.json", "ratios.json", "speed_135m.json", "encode_135m.json",
         "profile_grpo_135m.json", "sft_vs_plain.json", "rollout_speed.json"}
ROW_LABELS = {
    "base": "base model (untrained)", "sft": "SFT only", "sft+contrastive": "SFT + contrastive",
    "grpo": "GRPO without contrastive", "joint": "joint contrastive + GRPO", "joint+fusion": "joint + fusion",
    "joint+fusion+res": "joint + fusion + residual enhancement",
}


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) / 2**20 for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), None)
    versions = []
    for pkg in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores visible (shared with other jobs while these ran; no GPU)",
        f"- RAM: {mem:.1f} GiB" if mem else "- RAM: unknown",
        f"- {platform.platform()}, Python {platform.python_version()}",
        "- " + ", ".join(versions),
        f"- page generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []




def cell(stat: dict | None, digits: int = 3) -> str:
    if not stat:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if stat.get("n", 1) > 1 else f"{stat['mean']:.{digits}f}"


def compare(summary: dict, a: str, others: list[str], col: str) -> tuple[str, float | None]:
    """'yes' when a's mean beats every other by more than the largest std, 'slightly' when above but within
    the spread, 'no' otherwise; also returns the margin over the best other."""
    sa = summary.get(a, {}).get(col)
    so = [summary.get(o, {}).get(col) for o in others]
    if not sa or not all(so):
        return "n/a", None
    margin = sa["mean"] - max(s["mean"] for s in so)
    spread = max([sa["std"]] + [s["std"] for s in so])
    if margin > spread and margin > 0:
        return "yes", margin
    if margin == 0:
        return "tie", margin
    return ("slightly (within the seed spread)" if margin > 0 else "no"), margin


def verdicts(summary: dict, columns: list[str]) -> list[str]:
    claims = [
        ("Training helps at all (joint vs the untrained base model)", "joint", ["base"], columns),
        ("Contrastive training makes the embeddings retrieve (SFT + contrastive vs SFT only)", "sft+contrastive", ["sft"],
         [c for c in columns if "R@1" in c]),
        ("Joint contrastive + GRPO beats each half (joint vs SFT + contrastive and vs GRPO without contrastive)", "joint",
         ["sft+contrastive", "grpo"], columns),
        ("Fusion helps (joint + fusion vs joint)", "joint+fusion", ["joint"], columns),
        ("Residual enhancement helps fine-grained attributes (joint + fusion + residual vs joint + fusion)", "joint+fusion+res",
         ["joint+fusion"], columns),
    ]
    out = []
    for text, a, others, cols in claims:
        parts, wins = [], 0
        for col in cols:
            verdict, margin = compare(summary, a, others, col)
            wins += verdict == "yes"
            parts.append(f"{col}: {verdict}" + (f" ({margin:+.3f})" if margin is not None else ""))
        overall = "shows" if wins and wins >= len(cols) / 2 else ("partly shows" if wins else "does not show at this scale")
        out.append(f"- **{text}** — {overall}. " + "; ".join(parts) + ".")
    return out


def ablation_section(data: dict | None) -> list[str]:
    lines = ["## 1. Ablation on the synthetic catalog", ""]
    if not data:
        return lines + ["Not run yet: `OMP_NUM_THREADS=1 python benchmarks/ablation.py`.", ""]
    cols, summary, plan = data["columns"], data["summary"], data["plan"]
    lines += [
        f"Command: `{data['command']}` (wall {data['wall_seconds']:.0f} s, {data.get('parallel_jobs', 1)} seeds at once). "
        f"Seeds {data['seeds']}; cells are mean ± sample std over seeds.",
        "",
        f"Set-up: tiny random-init Qwen2.5-VL-shaped model, synthetic catalog of {plan['products']} products; SFT "
        f"{plan['sft']['max_steps']} steps full fine-tune (lr {plan['sft']['learning_rate']}, batch {plan['sft']['per_device_train_batch_size']}), "
        f"GRPO {plan['grpo']['max_steps']} steps with LoRA ({plan['grpo']['num_generations']} rollouts, rewards {plan['grpo']['rewards']}, "
        f"completions ≤ {plan['grpo']['max_completion_length']} tokens); contrastive_weight 0.5 where on. Eval: test split capped to "
        f"{plan['eval']['max_products']} products, {plan['eval']['max_queries']} queries per setting, "
        f"{plan['eval']['max_attribute_records']} attribute records, reasoning of ≤ {plan['eval']['max_new_tokens']} tokens. "
        "Training time is SFT + GRPO for GRPO rows, on a shared 2-core machine (compare rows, not machines).",
        "",
        *([f"Note: {data['note']}", ""] if data.get("note") else []),
        "| run | " + " | ".join(cols) + " | training wall time (s) |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for row in data["rows"]:
        s = summary.get(row, {})
        lines.append(f"| {ROW_LABELS.get(row, row)} | " + " | ".join(cell(s.get(c)) for c in cols) + f" | {cell(s.get('train_s'), 0)} |")
    lines += ["", "Verdict per claim (\"yes\" = the mean beats every compared row by more than the largest seed std):", ""]
    lines += verdicts(summary, cols)
    f1 = [summary.get(r, {}).get("attribute micro-F1", {}).get("mean") for r in data["rows"]]
    if f1 and all(v == 0 for v in f1 if v is not None):
        lines += ["", "Attribute micro-F1 is 0 for every row: no model wrote a parseable `<answer>` in this budget (the GRPO "
                  "rewards stayed near 0, so GRPO had almost no signal), and the reasoning the trained models generate before "
                  "pooling is near-constant, which washes the product out of the embedding. The attribute claims are "
                  "therefore untested here, and the '(no reasoning)' columns, which embed the input alone, are the fairer "
                  "view of what the contrastive head learned. A larger budget (`ablation.py` without `--quick`, or more SFT "
                  "steps) is needed before these claims can show."]
    lines += ["", "At this scale (a random-init model trained for minutes) the numbers measure whether each piece moves the "
              "metrics in the paper's direction, not the paper's effect sizes; a \"no\" here is a statement about the miniature.", ""]
    return lines


def real_data_section(data: dict | None) -> list[str]:
    lines = ["## 2. Real product text", ""]
    if not data:
        return lines + ["Not run yet: `OMP_NUM_THREADS=1 python benchmarks/real_data.py`.", ""]
    lines += [
        f"All four datasets: `OMP_NUM_THREADS=1 python benchmarks/real_data.py [--quick]`; the rows below were recorded with "
        f"the per-dataset commands shown (seed {data['seed']}). Tiny "
        "Qwen2 text models trained from scratch on each train split (tokenizer includes the train titles); SFT is a full "
        "fine-tune, GRPO trains LoRA with the attribute_f1 reward; steps and sizes per row.",
        "",
        "| dataset | metric | before | after | data and steps | train wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in data["datasets"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | |")
            continue
        s = r.get("sizes_used", data["sizes"])
        if r["task"] == "attributes":
            sz, f1 = r["sizes"], r["attribute_f1"]
            used = (f"train {sz['train']} of {sz['train_available']} ({sz['train_without_attributes_dropped']} without attributes "
                    f"dropped), test {sz['test']}; SFT {s['sft_steps']} steps, GRPO {s['grpo_steps']} steps, completions ≤ {s['max_new_tokens']} tokens")
            lines.append(f"| {name} | attribute micro-F1: SFT → SFT + GRPO | {fmt(f1['sft'].get('micro_f1'))} | "
                         f"{fmt(f1['grpo'].get('micro_f1'))} | {used} | {r['sft']['seconds'] + r['grpo']['seconds']:.0f} |")
            lines.append(f"| {name} | answers parsed (rate) | {fmt(f1['sft'].get('parse_rate'))} | {fmt(f1['grpo'].get('parse_rate'))} | | |")
            g = r["grpo"].get("last_logged", {})
            if "reward" in g:
                lines.append(f"| {name} | GRPO last step: mean reward / share of groups with no reward spread (no gradient) | | "
                             f"{fmt(g.get('reward'))} / {fmt(g.get('frac_reward_zero_std'), 2)} | | |")
        else:
            ret = r["retrieval"]
            used = (f"SFT {s['sft_steps']} steps on {r['sft_rows']} rows from {r['train_titles']} train offers "
                    f"({r.get('train_without_attributes_dropped', '?')} without attributes left out); {ret['base'].get('n_queries', '-')} "
                    f"queries, corpus ≤ {s['corpus_cap']} offers, reasoning ≤ {s['max_new_tokens']} tokens")
            lines.append(f"| {name} | query→offer R@1: base → contrastive SFT | {fmt(ret['base'].get('recall@1'))} | "
                         f"{fmt(ret['sft'].get('recall@1'))} | {used} | {r['sft']['seconds']:.0f} |")
            lines.append(f"| {name} | MRR | {fmt(ret['base'].get('mrr'))} | {fmt(ret['sft'].get('mrr'))} | | |")
            if "sft (no reasoning)" in ret:
                nr_base, nr_sft = ret["base (no reasoning)"], ret["sft (no reasoning)"]
                lines.append(f"| {name} | R@1, no reasoning (title alone embedded) | {fmt(nr_base.get('recall@1'))} | {fmt(nr_sft.get('recall@1'))} | | |")
                lines.append(f"| {name} | MRR, no reasoning | {fmt(nr_base.get('mrr'))} | {fmt(nr_sft.get('mrr'))} | | |")
        lines.append(f"| | command: `{r['command']}` | | | | |")
    lines += ["", "Reading (computed from the rows above):", ""]
    for name, r in data["datasets"].items():
        if r.get("task") == "attributes":
            a, b = r["attribute_f1"]["sft"].get("micro_f1"), r["attribute_f1"]["grpo"].get("micro_f1")
            g = r["grpo"].get("last_logged", {})
            why = (" — the scores did not move; at GRPO's last step every rollout group had the same reward (all advantages 0, no gradient)"
                   if a == b and g.get("frac_reward_zero_std") == 1 else "")
            lines.append(f"- {name}: SFT + GRPO {'beats' if b > a else 'does not beat'} SFT on attribute micro-F1 ({fmt(a)} → {fmt(b)}){why}.")
        elif r.get("task") == "retrieval":
            ret = r["retrieval"]
            a, b = ret["base"].get("recall@1"), ret["sft"].get("recall@1")
            lines.append(f"- {name}: contrastive SFT {'improves' if b > a else 'does not improve'} R@1 over the untrained base "
                         f"({fmt(a)} → {fmt(b)})" + ("; the random-init base's mean pooling acts like bag-of-tokens matching of "
                         "titles, which a few minutes of training from scratch loses rather than improves." if b <= a else "."))
    lines += ["", "`--only NAME` refreshes one dataset and keeps the others in the results file.", ""]
    return lines


def cost_section(data: dict | None, grpo_speed: dict | None = None) -> list[str]:
    lines = ["## 3. Cost next to plain TRL", ""]
    if not data:
        return lines + ["Not run yet: `OMP_NUM_THREADS=1 python benchmarks/cost.py`.", ""]
    runs = data["runs"]
    lines += [f"Command: `{data['command']}` (each measurement in its own process, one torch thread).", "",
              "| measurement | speed | peak RSS (MB) |", "|---|---|---|"]
    for m, r in runs.items():
        if "error" in r:
            lines.append(f"| {m} | failed: {r['error'].splitlines()[-1][:120]} | |")
        elif m.startswith("sft"):
            lines.append(f"| {m} ({'MoonSFTTrainer, contrastive 0.5' if m.endswith('moon') else 'trl.SFTTrainer'}) | "
                         f"{fmt(r['tokens_per_second'], 0)} tokens/s | {fmt(r['peak_rss_mb'], 0)} |")
        else:
            lines.append(f"| {m} ({'MoonGRPOTrainer, contrastive 0.5' if m.endswith('moon') else 'trl.GRPOTrainer'}) | "
                         f"{fmt(r['median_step_seconds'], 2)} s/step (median of {r['steps']}) | {fmt(r['peak_rss_mb'], 0)} |")
    ev = data.get("eval_speed") or {}
    for key, label in (("encode_with_reasoning/1_thread", "eval, with reasoning"), ("encode_without_reasoning/1_thread", "eval, no reasoning")):
        if key in ev:
            e = ev[key]
            lines.append(f"| {label} (`{ev['command'].strip()}`) | {fmt(e['embeddings_per_second'], 1)} embeddings/s "
                         f"(batch {e['batch_size']}, ≤ {e['max_new_tokens']} new tokens) | {fmt(e['peak_rss_mb'], 0)} |")
    lines += ["", f"- SFT tokens/s, moon-rl (contrastive on) / TRL: **{fmt(data.get('sft_tokens_per_second_ratio_moon_over_trl'))}** "
              "(1.0 = as fast; the two runs are sequential, so load changes on a shared machine move it by several percent)."]
    gs = grpo_speed or data.get("grpo_speed")  # the live results file wins over the copy taken when cost.py ran
    if gs:
        over = gs.get("overhead_vs_trl", {})
        lines.append(f"- GRPO step time, moon-rl / TRL, interleaved in one process (`{gs['command'].strip()}`): "
                     + ", ".join(f"{k} **{1 + v:.3f}** (target ≤ {1 + gs['targets'][k]:.2f})" for k, v in over.items())
                     + f"; medians {gs['median_step_seconds']} s.")
    lines.append(f"- GRPO step time ratio from the sequential runs above: {fmt(data.get('grpo_step_time_ratio_moon_over_trl_sequential'))} "
                 "(only a few steps each, run one after the other while the load changed: use the interleaved ratio; these runs are for memory).")
    if not gs:
        lines.append("- The interleaved GRPO timing (`python benchmarks/grpo_speed.py`) has no results file yet.")
    return lines + [""]


def grpo_tiny_section(data: dict | None, control: dict | None) -> list[str]:
    """benchmarks/grpo_tiny.py: the reward and in-batch retrieval over GRPO steps, a control run without the
    contrastive term when there is one, and the held-out retrieval of GRPO vs its SFT start."""
    lines = ["## Joint GRPO on the tiny VL model (`grpo_tiny`)", ""]
    if data is None:
        return lines + ["Not run yet: `python benchmarks/grpo_tiny.py`.", ""]
    s = data["grpo_settings"]
    lines += [f"Command: `{data['command'].strip()}`", "",
              f"SFT {data['sft_steps']} steps ({data['recipe']['sft']}), then {data['grpo_steps']} GRPO steps of "
              f"{s['per_device_train_batch_size'] // s['num_generations']} prompts x {s['num_generations']} rollouts, "
              f"contrastive_weight={s['contrastive_weight']}, hard_negatives_by={s.get('hard_negatives_by')}, "
              f"rewards {', '.join(s['rewards'])}. Means over windows of {data['window']} steps "
              f"({data['seconds']['total']:.0f} s in all).", ""]
    keys = [("reward", "reward"), ("rewards/format/mean", "format"), ("rewards/attribute_f1/mean", "attribute_f1"),
            ("retrieval_accuracy", "in-batch retrieval acc."), ("contrastive_loss", "contrastive loss")]
    header = ["steps", *(label for _, label in keys)]
    ctrl = {w["steps"]: w for w in (control or {}).get("trajectory", [])}
    if ctrl:
        header.append(f"retrieval acc., control (weight {control['grpo_settings']['contrastive_weight']:g})")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for w in data.get("trajectory", []):
        row = [w["steps"], *(fmt(w.get(k)) for k, _ in keys)]
        if ctrl:
            row.append(fmt(ctrl.get(w["steps"], {}).get("retrieval_accuracy")))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Reward up: {data['reward_up']}; in-batch retrieval accuracy up: {data['retrieval_accuracy_up']} "
              "(first vs last window)."]
    if control is not None:
        lines.append(f"Control `{control['command'].strip()}`: retrieval accuracy {fmt(control['start']['retrieval_accuracy'])} -> "
                     f"{fmt(control['end']['retrieval_accuracy'])}, reward {fmt(control['start']['reward'])} -> {fmt(control['end']['reward'])}. "
                     "Its contrastive term is computed and logged, but its gradients sit orders of magnitude below AdamW's eps "
                     "(1e-8): the control shows what the policy loss alone does to both numbers, on the same batches.")
    held = data.get("held_out_retrieval")
    if held:
        lines += ["", f"Held-out retrieval (test split, {held['n_corpus']} products; small, so one query moves recall@1 by 2-3 points):", "",
                  "| setting | metric | GRPO | SFT start |", "|---|---|---|---|"]
        for setting, grpo in held["grpo"].items():
            for metric in ("recall@1", "recall@10", "mrr"):
                lines.append(f"| {setting} (n={grpo['n_queries']}) | {metric} | {fmt(grpo[metric])} | {fmt(held['sft'][setting][metric])} |")
    return lines + [""]


def pairwise_tiny_section(data: dict | None) -> list[str]:
    """benchmarks/pairwise_tiny.py: held-out A-vs-B accuracy after SFT and after GRPO, against always-A/B."""
    lines = ["## The pairwise (Creative4U) task on the tiny VL model (`pairwise_tiny`)", ""]
    if data is None:
        return lines + ["Not run yet: `python benchmarks/pairwise_tiny.py`.", ""]
    s, held, base = data["grpo_settings"], data["held_out"], data["held_out_baselines"]
    lines += [f"Command: `{data['command'].strip()}`", "",
              f"Synthetic pairs {data['pairs']} (which of two renders matches the title). SFT {data['sft_steps']} steps "
              f"({data['recipe']['sft']}), then {data['grpo_steps']} GRPO steps of "
              f"{s['per_device_train_batch_size'] // s['num_generations']} prompts x {s['num_generations']} rollouts, rewards "
              f"{', '.join(s['rewards'])} ({data['seconds']['total']:.0f} s in all). Held-out: the test pairs, greedy answers.", "",
              "| held-out pairs | GRPO | SFT start | always A | always B |", "|---|---|---|---|---|",
              f"| accuracy (n={held['grpo']['n_pairs']}) | {fmt(held['grpo']['accuracy'])} | {fmt(held['sft']['accuracy'])} | "
              f"{fmt(base['always A'])} | {fmt(base['always B'])} |",
              f"| answered A or B | {fmt(held['grpo']['answered'])} | {fmt(held['sft']['answered'])} | 1.000 | 1.000 |", "",
              f"Training reward (sum of the rewards, first vs last {data.get('window', 20)} steps): {fmt(data['train_reward']['start'])} -> "
              f"{fmt(data['train_reward']['end'])}. GRPO above chance and above both constant answers: {data['grpo_above_chance']}; "
              f"GRPO minus SFT: {data['grpo_minus_sft']:+.3f}."]
    return lines + [""]


def other_section(results: Path) -> list[str]:
    lines = ["## Other measurements", ""]
    for path in sorted(results.glob("*.json")):
        if path.name in KNOWN:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            continue
        lines.append(f"### {path.stem}")
        lines.append("")
        lines.append(f"Command: `{data.get('command', 'see the script docstring').strip()}`")
        lines.append("")
        for key, value in data.items():
            if key in ("command", "machine", "step_seconds") or isinstance(value, list):
                continue
            if isinstance(value, dict):
                flat = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
                if flat:
                    lines.append(f"- {key}: {flat}")
            else:
                lines.append(f"- {key}: {value}")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    def load(name: str) -> dict | None:
        p = args.results / name
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    lines = ["# moon-rl benchmark results", "",
             "Generated by `python benchmarks/make_results.py` from `benchmarks/results/*.json` "
             "(all of it: `python benchmarks/run_all.py`). Do not edit by hand.", "", "## Machine", ""]
    lines += machine() + [""]
    # Real data on a real pretrained base first; the tiny-model miniatures after, as an appendix.
    lines += demo_section(load("demo.json"))
    lines += pretrained_section(load("pretrained.json"), load("smollm2_e2e.json"))
    lines += attributes_section(load("attributes.json"))
    lines += embed_section(load("embed.json"))
    lines += sft_vs_plain_section(load("sft_vs_plain.json"))
    lines += ratios_section(load("ratios.json"))
    lines += rollout_section(load("rollout_speed.json"))
    lines += scaling_section(load("speed_135m.json"), load("profile_grpo_135m.json"))
    lines += ["# Appendix: tiny models trained from scratch (miniatures of the pipeline)", "",
              "Random-init models of a few million parameters, trained for minutes on synthetic or real text: they check "
              "that every path runs and how it compares with plain TRL, not MOON3.0's gains (the real-base sections above "
              "do that).", ""]
    lines += ablation_section(load("ablation.json"))
    lines += real_data_section(load("real_data.json"))
    lines += cost_section(load("cost.json"), load("grpo_speed.json"))
    lines += grpo_tiny_section(load("grpo_tiny.json"), load("grpo_tiny_control.json"))
    lines += pairwise_tiny_section(load("pairwise_tiny.json"))
    lines += other_section(args.results)
    args.out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
