"""Attribute extraction on the real base: SmolLM2-135M-Instruct zero-shot vs `moon-rl sft` vs SFT + `moon-rl grpo`.

    OMP_NUM_THREADS=2 nohup .venv/bin/python benchmarks/attributes.py > runs/attributes.log 2>&1 &   # resumes where it stopped
    .venv/bin/python benchmarks/attributes.py --datasets oa-mine --sft-steps 60,120 --grpo-steps 20,40

On the full AE-110K and OA-Mine test sets (524 / 491 titles, ../shared/data/real/ae110k_oamine), every row is scored by
`moon-rl eval --tasks attributes,classification` on the same records with the same prompt (the instruction, the
category, the title and every attribute name of the category's schema, `data_prep.formats.prompt_text`):
- `base`: the untouched model, zero-shot.
- `sft`: `moon-rl sft` with configs/sft_smollm2_attributes.yaml on the train split (compact traces, records without
  any attribute left out), in legs up to each of --sft-steps, scored after each.
- `grpo`: `moon-rl grpo` with configs/grpo_smollm2_attributes.yaml (`attribute_f1` + `format` rewards) from the SFT
  run at its last step, in legs up to each of --grpo-steps, scored after each. Per window of --window steps (from the
  run's logs.jsonl): reward mean, reward std and the share of groups with zero reward spread (TRL's
  `frac_reward_zero_std`).
Micro-F1 is ExtractGPT's: a predicted value counts when it matches a gold value of that attribute after normalisation
(`reward_fns.attributes.attribute_matches`); an asked attribute the title does not state (AE-110K's "n/a", or one the
record does not label) that the answer fills counts against precision; a missed one against recall. Parse rate: the
share of answers with a parsable JSON object. Classification: category accuracy by k-NN (k=5, train split as memory)
on the mean of the last hidden states over the title, for the same three models.
Each point is written to benchmarks/results/attributes.json as soon as it is scored (the command beside it); a rerun
skips finished points and resumes a training leg from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from jsonfile import read_json, write_json  # noqa: E402  (after sys.path)
from matching_data import PY, run  # noqa: E402
from model_rows import base_model_dir, snapshot  # noqa: E402  (the pretrained rows' helpers)

RESULTS = ROOT / "benchmarks" / "results" / "attributes.json"
REAL = ROOT.parent / "shared" / "data" / "real" / "ae110k_oamine" / "data" / "processed_datasets"
SFT_CONFIG = ROOT / "configs" / "sft_smollm2_attributes.yaml"
GRPO_CONFIG = ROOT / "configs" / "grpo_smollm2_attributes.yaml"
SEED = 0
# name: (data prepare --source, folder, new tokens per answer: the compact traces' p95 is 76 / 111 tokens)
DATASETS = {"ae-110k": ("ae110k", "ae-110k", 96), "oa-mine": ("oamine", "oa-mine", 128)}
from attributes_section import PUBLISHED, PUBLISHED_NOTE  # noqa: E402  ExtractGPT's figures, for scale


def prepare(name: str, workdir: Path) -> dict[str, Path]:
    """The catalog (test split = the scored records), the SFT dataset (compact traces) and the GRPO dataset."""
    source, folder, _ = DATASETS[name]
    data = workdir / name / "data"
    if not (data / "sft" / "dataset_info.json").is_file():
        if data.exists():
            shutil.rmtree(data)
        run([PY, "-m", "moon_rl", "data", "prepare", "--source", source, "--input", str(REAL / folder), "--out", str(data),
             "--task", "sft", "--trace", "compact", "--on-error", "skip"])
    grpo = workdir / name / "grpo_data"
    if not (grpo / "dataset_info.json").is_file():
        run([PY, "-m", "moon_rl", "data", "prepare", "--task", "grpo", "--catalog", str(data / "catalog"), "--out", str(grpo),
             "--on-error", "skip"])
    return {"catalog": data / "catalog", "sft": data / "sft", "grpo": grpo}


def score(model: Path, catalog: Path, out: Path, max_new_tokens: int, batch_size: int, max_records: int,
          max_products: int) -> dict:
    """`moon-rl eval` attributes + classification on the test split; its metrics.json is the cache (a rerun reads it)."""
    cmd = [PY, "-m", "moon_rl", "eval", "--model", str(model), "--data", str(catalog), "--out", str(out),
           "--tasks", "attributes,classification", "--no-reasoning", "--no-query-reasoning",
           "--max-attribute-records", str(max_records), "--max-products", str(max_products), "--batch-size", str(batch_size),
           "--max-new-tokens", str(max_new_tokens), "--sample-seed", str(SEED), "--overwrite-output"]
    metrics_file = out / "metrics.json"
    t0 = time.time()
    if not metrics_file.is_file():
        run(cmd)
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    (entry,) = metrics["models"].values()
    attrs, cls = entry["attributes"], entry.get("classification") or {}
    knn = cls.get("knn") or {}
    return {
        "micro_f1": round(attrs["micro_f1"], 4), "precision": round(attrs["precision"], 4),
        "recall": round(attrs["recall"], 4), "parse_rate": round(attrs["parse_rate"], 4), "records": attrs["n_records"],
        "knn_category_accuracy": _accuracy(knn), "eval_seconds": round(time.time() - t0, 1),
        "examples": attrs.get("examples", [])[:2], "eval_command": shlex.join(cmd),
    }


def _accuracy(level_accuracy: dict) -> float | None:
    """Exact-category accuracy from eval's `level_accuracy` (one level for these catalogs)."""
    value = level_accuracy.get("full_path")
    return round(value, 4) if isinstance(value, (int, float)) else None


def reward_windows(logs: Path, window: int) -> list[dict]:
    """Per window of `window` GRPO steps: reward mean, reward std and the share of groups with zero spread."""
    by_step: dict[int, dict] = {}
    if logs.is_file():
        for line in logs.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if "frac_reward_zero_std" in row and "step" in row:
                by_step[int(row["step"])] = row  # a resumed leg re-logs nothing twice; last wins if it did
    out = []
    steps = sorted(by_step)
    for start in range(0, len(steps), window):
        rows = [by_step[s] for s in steps[start : start + window]]
        mean = lambda key: round(sum(r[key] for r in rows) / len(rows), 4)  # noqa: E731
        out.append({"steps": f"{rows[0]['step']}-{rows[-1]['step']}", "reward": mean("reward"),
                    "reward_std": mean("reward_std"), "frac_zero_spread": mean("frac_reward_zero_std"),
                    "attribute_f1": mean("rewards/attribute_f1/mean") if "rewards/attribute_f1/mean" in rows[0] else None})
    return out


def train_leg(kind: str, init: Path, data: Path, out: Path, config: Path, target: int, sets: list[str]) -> list[str]:
    cmd = [PY, "-m", "moon_rl", kind, "--model", str(init), "--data", str(data), "--out", str(out), "--config", str(config),
           "--set", f"max_steps={target}", "--set", f"seed={SEED}", *[x for s in sets for x in ("--set", s)]]
    if any(out.glob("checkpoint-*/moon_rl_complete.json")):
        cmd += ["--resume", "latest"]
    run(cmd)
    return cmd


class Results:
    """benchmarks/results/attributes.json, rewritten atomically after every point."""

    def __init__(self, path: Path):
        self.path = path

    def entry(self, name: str) -> dict:
        return read_json(self.path).get(name, {})

    def save(self, name: str, update) -> dict:
        results = read_json(self.path)
        entry = results.setdefault(name, {})
        update(entry)
        entry["rows"] = {row: curve[-1]["micro_f1"] for row, curve in entry.get("curves", {}).items() if curve}
        entry["parse_rate"] = {row: curve[-1]["parse_rate"] for row, curve in entry.get("curves", {}).items() if curve}
        entry["knn_category_accuracy"] = {
            row: curve[-1]["knn_category_accuracy"] for row, curve in entry.get("curves", {}).items() if curve
        }
        windows = entry.get("grpo_reward_windows") or []
        if windows:
            entry["reward_spread_last_window"] = round(1 - windows[-1]["frac_zero_spread"], 4)
        if PUBLISHED:
            results["published_extractgpt"] = {"figures": PUBLISHED, "note": PUBLISHED_NOTE}
        write_json(self.path, results)
        return entry


def add_point(results: Results, name: str, row: str, point: dict, extra: dict | None = None) -> None:
    def update(entry: dict) -> None:
        curve = [p for p in entry.setdefault("curves", {}).setdefault(row, []) if p["step"] != point["step"]]
        entry["curves"][row] = sorted([*curve, point], key=lambda p: p["step"])
        entry.update(extra or {})

    results.save(name, update)


def has_point(results: Results, name: str, row: str, step: int) -> bool:
    return any(p["step"] == step for p in results.entry(name).get("curves", {}).get(row, []))


def run_dataset(name: str, args: argparse.Namespace, results: Results) -> None:
    workdir = args.workdir
    paths = prepare(name, workdir)
    tokens = DATASETS[name][2]
    base = base_model_dir(workdir)
    header = {"records_scored": "all test records with attributes" if not args.max_records else f"a seeded sample of {args.max_records}",
              "max_new_tokens": tokens, "seed": SEED, "sft_config": str(SFT_CONFIG.relative_to(ROOT)),
              "grpo_config": str(GRPO_CONFIG.relative_to(ROOT))}
    evals = workdir / name / "eval"

    def scored(model: Path, label: str) -> dict:
        return score(model, paths["catalog"], evals / label, tokens, args.batch_size, args.max_records, args.max_products)

    if not has_point(results, name, "base", 0):
        point = {"step": 0, **scored(base, "base")}
        add_point(results, name, "base", point, {**header, "records": point["records"]})

    sft_run = workdir / name / "sft_run"
    for target in args.sft_steps:
        if has_point(results, name, "sft", target):
            continue
        t0 = time.time()
        cmd = train_leg("sft", base, paths["sft"], sft_run, SFT_CONFIG, target, [])
        train_s = round(time.time() - t0, 1)
        snapshot(sft_run, workdir / name / f"sft_step{target}")
        point = {"step": target, "train_seconds": train_s, "command": shlex.join(cmd),
                 **scored(workdir / name / f"sft_step{target}", f"sft-step{target}")}
        add_point(results, name, "sft", point)

    start = args.sft_steps[-1]
    init = workdir / name / f"sft_step{start}"
    grpo_run = workdir / name / "grpo_run"
    for target in args.grpo_steps:
        if has_point(results, name, "grpo", start + target):
            continue
        t0 = time.time()
        cmd = train_leg("grpo", init, paths["grpo"], grpo_run, GRPO_CONFIG, target, [f"max_completion_length={tokens}"])
        train_s = round(time.time() - t0, 1)
        snapshot(grpo_run, workdir / name / f"grpo_step{target}")
        point = {"step": start + target, "grpo_steps": target, "train_seconds": train_s, "command": shlex.join(cmd),
                 **scored(workdir / name / f"grpo_step{target}", f"grpo-step{target}")}
        windows = reward_windows(grpo_run / "logs.jsonl", args.window)
        add_point(results, name, "grpo", point, {"grpo_reward_windows": windows, "grpo_from_sft_step": start})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="ae-110k,oa-mine", help="comma-separated: " + ",".join(DATASETS))
    parser.add_argument("--sft-steps", default="30,60", help="SFT legs (scored after each); GRPO starts from the last")
    parser.add_argument("--grpo-steps", default="10,20", help="GRPO legs, counted from the SFT start")
    parser.add_argument("--window", type=int, default=10, help="GRPO steps per reward-spread window")
    parser.add_argument("--batch-size", type=int, default=32, help="records per generation batch in eval")
    parser.add_argument("--max-records", type=int, default=0, help="score a seeded sample (0: the full test sets)")
    parser.add_argument("--max-products", type=int, default=0, help="k-NN memory and corpus cap, whole groups (0: all)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "attributes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.sft_steps = [int(s) for s in args.sft_steps.split(",")]
    args.grpo_steps = [int(s) for s in args.grpo_steps.split(",")]
    results = Results(args.out)
    for name in args.datasets.split(","):
        if name not in DATASETS:
            raise SystemExit(f"--datasets: unknown {name!r}; choose from {', '.join(DATASETS)}")
        run_dataset(name, args, results)
        print(json.dumps({name: {k: results.entry(name).get(k) for k in ("rows", "parse_rate", "reward_spread_last_window")}}, indent=2))


if __name__ == "__main__":
    main()
