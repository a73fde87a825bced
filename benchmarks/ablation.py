"""MOON3.0's ablation table in miniature: which parts of the recipe help, on the synthetic catalog.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ablation.py [--seeds 0 1] [--jobs 2] [--quick]
        [--out benchmarks/results/ablation.json] [--work DIR]

Rows (every run from the same tiny random-init Qwen2.5-VL-shaped model and catalog of a seed):
  base                 the untrained model (zero-shot: mean pooling, no head)
  sft                  SFT only (contrastive_weight 0)
  sft+contrastive      SFT + InfoNCE (contrastive_weight 0.5)
  grpo                 GRPO without contrastive, from `sft` (the pure reasoning branch)
  joint                contrastive + GRPO, from `sft+contrastive`
  joint+fusion         same, with fusion pooling from SFT onwards
  joint+fusion+res     same, plus fine-grained residual enhancement from SFT onwards
Columns: retrieval R@1 (text->mm, image->mm), category accuracy (k-NN and zero-shot, full path), attribute
micro-F1 (the "attribute accuracy" of the issue) and training wall time (SFT + GRPO where both ran); then
retrieval and k-NN again with reasoning off ("no reasoning": the input alone is embedded, nothing generated),
because a model this small can generate near-constant reasoning that washes the product out of the pooled
embedding. `--work DIR --reeval` adds those columns to a finished run kept in DIR without retraining.

Departures from the paper, for a CPU budget: a tiny random-init model instead of Qwen2.5-VL-7B; SFT is a full
fine-tune (LoRA cannot teach a random-init model the trace format: NLL barely moves), GRPO then trains LoRA on
top; the fusion / residual modules are on from SFT onwards because the head's pooling is fixed at SFT; a few
hundred products, tens of SFT steps and a handful of GRPO steps. Each seed runs in its own process
(`--jobs` at once, one torch thread each); results are per seed plus mean and standard deviation.
"""

from __future__ import annotations

import argparse
import json
import os
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
RESULTS = ROOT / "benchmarks" / "results" / "ablation.json"

# Column label -> path into one model's eval metrics (see moon_rl.demo.TABLE_ROWS).
COLUMNS = {
    "text->mm R@1": ("retrieval", "text->multimodal", "recall@1"),
    "image->mm R@1": ("retrieval", "image->multimodal", "recall@1"),
    "category acc (k-NN)": ("classification", "knn", "full_path"),
    "category acc (zero-shot)": ("classification", "zero_shot", "full_path"),
    "attribute micro-F1": ("attributes", "micro_f1"),
}
CON = {"contrastive_weight": 0.5}
FUSION = {**CON, "pooling": "fusion"}
FRES = {**FUSION, "residual_enhancement": True}
# SFT runs: name -> overrides (full fine-tune, see the docstring).
SFT_RUNS = {"sft": {"contrastive_weight": 0.0}, "sft+contrastive": CON, "sft+fusion": FUSION, "sft+fusion+res": FRES}
# GRPO runs: name -> (SFT run it starts from, overrides).
GRPO_RUNS = {
    "grpo": ("sft", {"contrastive_weight": 0.0}),
    "joint": ("sft+contrastive", CON),
    "joint+fusion": ("sft+fusion", FUSION),
    "joint+fusion+res": ("sft+fusion+res", FRES),
}
# The same columns with the embeddings of the input alone (no generated reasoning before pooling, no generation
# at all): at this scale the generated reasoning can be degenerate, which these columns isolate.
NO_REASONING = {
    "text->mm R@1 (no reasoning)": ("retrieval", "text->multimodal", "recall@1"),
    "image->mm R@1 (no reasoning)": ("retrieval", "image->multimodal", "recall@1"),
    "category acc (k-NN, no reasoning)": ("classification", "knn", "full_path"),
}
ROWS = ["base", "sft", "sft+contrastive", "grpo", "joint", "joint+fusion", "joint+fusion+res"]


def make_plan(quick: bool):
    from moon_rl.demo import PLANS, DemoPlan

    demo = PLANS["quick"]
    steps, grpo_steps = (60, 6) if quick else (100, 8)
    return DemoPlan(
        products=96 if quick else 150,
        model_size="tiny",
        sft={**demo.sft, "max_steps": steps, "learning_rate": 3e-3, "lora": False, "logging_steps": 10,
             "save_steps": 10**6, "disable_tqdm": True},
        grpo={**demo.grpo, "max_steps": grpo_steps, "learning_rate": 5e-4, "max_completion_length": 160 if quick else 200,
              "logging_steps": 1, "save_steps": 10**6, "disable_tqdm": True},
        eval={"max_products": 48 if quick else 60, "max_queries": 24 if quick else 30,
              "max_attribute_records": 12 if quick else 16, "max_new_tokens": 160 if quick else 200,
              "batch_size": 16, "progress": False},
    )


def dig(d, path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def run_seed(seed: int, quick: bool, work: Path) -> dict:
    """Every row for one seed; returns {"rows": {row: {column: value, "train_s": s}}, "timings_s": ...}."""
    import torch

    from moon_rl.demo import Stages, build_inputs, evaluate, train_grpo, train_sft

    torch.set_num_threads(1)
    plan = make_plan(quick)
    stages = Stages(3 + len(SFT_RUNS) + len(GRPO_RUNS) + 2 * len(ROWS))
    paths = build_inputs(work, plan, seed, stages)
    train_s: dict[str, float] = {"base": 0.0}
    runs: dict[str, Path] = {"base": paths["base-model"]}
    summaries = {}
    for name, overrides in SFT_RUNS.items():
        runs[name] = work / name.replace("+", "_")
        t0 = time.perf_counter()
        summaries[name] = stages.run(f"SFT {name}", train_sft, paths["base-model"], paths["data-sft"], runs[name], plan, seed, **overrides)
        train_s[name] = time.perf_counter() - t0
    for name, (start, overrides) in GRPO_RUNS.items():
        runs[name] = work / name.replace("+", "_")
        t0 = time.perf_counter()
        summaries[name] = stages.run(f"GRPO {name}", train_grpo, runs[start], paths["data-grpo"], runs[name], plan, seed, **overrides)
        train_s[name] = train_s[start] + time.perf_counter() - t0  # cumulative: SFT then GRPO
    rows = {}
    for row in ROWS:
        metrics = stages.run(f"eval {row}", evaluate, runs[row], [], paths["catalog"], work / "eval" / row.replace("+", "_"), plan)
        model_metrics = next(iter(metrics["models"].values()))
        rows[row] = {col: dig(model_metrics, path) for col, path in COLUMNS.items()}
        rows[row]["train_s"] = round(train_s[row], 1)
    add_no_reasoning(rows, runs, paths["catalog"], work, plan, stages)
    last = {name: {k: v for k, v in s["last"].items() if isinstance(v, (int, float))} for name, s in summaries.items()}
    return {"seed": seed, "rows": rows, "last_logged": last, "timings_s": stages.timings}


def run_paths(work: Path) -> tuple[dict[str, Path], Path]:
    """The run folders `run_seed` leaves under `work` (for --reeval) and the catalog."""
    runs = {"base": work / "base-model", **{n: work / n.replace("+", "_") for n in [*SFT_RUNS, *GRPO_RUNS]}}
    return runs, work / "catalog"


def add_no_reasoning(rows: dict, runs: dict[str, Path], catalog: Path, work: Path, plan, stages) -> None:
    """Retrieval and k-NN columns with reasoning off (cheap: no generation)."""
    from moon_rl.eval.run import EvalConfig, run_eval

    base = {k: v for k, v in plan.eval.items() if k != "max_new_tokens"}
    for row in ROWS:
        cfg = EvalConfig(model=str(runs[row]), data=str(catalog), out=str(work / "eval-nr" / row.replace("+", "_")),
                         tasks=["retrieval", "classification"], reasoning=False, query_reasoning=False, **base)
        metrics = stages.run(f"eval {row}, no reasoning", run_eval, cfg)
        model_metrics = next(iter(metrics["models"].values()))
        rows[row].update({col: dig(model_metrics, path) for col, path in NO_REASONING.items()})


def reeval(work: Path, quick: bool) -> None:
    """Add the no-reasoning columns to finished seeds under `work` (seed<N>.json + seed<N>/ run folders)."""
    import torch

    torch.set_num_threads(1)
    from moon_rl.demo import Stages

    plan = make_plan(quick)
    for part in sorted(work.glob("seed*.json")):
        data = json.loads(part.read_text(encoding="utf-8"))
        runs, catalog = run_paths(work / part.stem)
        add_no_reasoning(data["rows"], runs, catalog, work / part.stem, plan, Stages(len(ROWS)))
        part.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and (sample) standard deviation over seeds for every row and column."""
    out = {}
    for row in ROWS:
        out[row] = {}
        for col in [*COLUMNS, *NO_REASONING, "train_s"]:
            values = [s["rows"][row][col] for s in per_seed if s["rows"][row].get(col) is not None]
            if values:
                out[row][col] = {"mean": round(statistics.fmean(values), 4),
                                 "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2, help="seeds run at once, one process each")
    parser.add_argument("--quick", action="store_true", help="smaller catalog, fewer steps, smaller eval")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=None, help="keep run folders here (default: a temporary folder)")
    parser.add_argument("--reeval", action="store_true",
                        help="with --work: add the no-reasoning columns to finished seeds there and rewrite --out")
    parser.add_argument("--worker-seed", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--part", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker_seed is not None:  # one seed, in its own process
        result = run_seed(args.worker_seed, args.quick, args.work)
        args.part.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return

    if args.reeval:  # finished seeds in --work: add columns, merge, write
        if args.work is None:
            raise SystemExit("--reeval needs --work (the folder of a previous run)")
        start = time.perf_counter()
        reeval(args.work, args.quick)
        parts = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(args.work.glob("seed*.json"))]
        previous = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
        write_result(args, parts, previous.get("wall_seconds", 0.0) + time.perf_counter() - start, previous.get("command"))
        return

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="moon-ablation-") as tmp:
        work = args.work or Path(tmp)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        pending, running, parts = list(args.seeds), [], []
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                seed = pending.pop(0)
                part, log = work / f"seed{seed}.json", work / f"seed{seed}.log"
                (work / f"seed{seed}").mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, __file__, "--worker-seed", str(seed), "--part", str(part), "--work", str(work / f"seed{seed}")]
                cmd += ["--quick"] if args.quick else []
                print(f"seed {seed}: started (log {log})", flush=True)
                running.append((seed, part, log, subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)))
            time.sleep(5)
            for item in list(running):
                seed, part, log, proc = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                if proc.returncode != 0:
                    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
                    raise SystemExit(f"seed {seed} failed (exit {proc.returncode}):\n{tail}")
                print(f"seed {seed}: done", flush=True)
                parts.append(json.loads(part.read_text(encoding="utf-8")))
    write_result(args, parts, time.perf_counter() - start)


def write_result(args, parts: list[dict], wall: float, command: str | None = None) -> None:
    parts.sort(key=lambda p: p["seed"])
    plan = make_plan(args.quick)
    result = {
        "what": "ablation of the MOON3.0 recipe on the synthetic catalog, tiny random-init qwen2_5_vl",
        "command": command or "OMP_NUM_THREADS=1 python benchmarks/ablation.py " + " ".join(sys.argv[1:]),
        "plan": {"products": plan.products, "model_size": plan.model_size, "sft": plan.sft, "grpo": plan.grpo, "eval": plan.eval},
        "rows": ROWS,
        "columns": [*COLUMNS, *NO_REASONING],
        "seeds": [p["seed"] for p in parts],
        "per_seed": parts,
        "summary": aggregate(parts),
        "wall_seconds": round(wall, 1),
        "parallel_jobs": args.jobs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {result['wall_seconds']}s")


if __name__ == "__main__":
    main()
