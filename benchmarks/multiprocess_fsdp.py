"""Two-process FSDP on CPU (gloo) against DDP and one process: SmolLM2-135M-Instruct, LoRA, contrastive term.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/multiprocess_fsdp.py [--only sft-fsdp ...] [--force]

Writes benchmarks/results/multiprocess_fsdp.json, one row per run as it finishes (rerunning skips the rows that
exited 0; --force reruns them). Each training row is `moon-rl sft` (3 steps, 4 rows a process) or `moon-rl grpo`
(2 steps, 2 prompts x 2 rollouts a process) on abt-buy with the recipes in configs/, launched as:
- `1proc`: plain `python -m moon_rl` (the negatives are the local batch only; the named baseline);
- `ddp`: `accelerate launch --config_file configs/accelerate/cpu_2proc.yaml` (DistributedDataParallel, gloo);
- `fsdp`: `accelerate launch --config_file configs/accelerate/fsdp_cpu_2proc.yaml` (FSDP2, gloo).
Both two-process rows go through benchmarks/fsdp_cpu_worker.py, which reports the class of the model accelerate
prepared and, for FSDP, does what accelerate 1.16 will not do on a CPU (see its docstring): keep the FSDP plugin.
The `probe-*` rows record what accelerate makes of the FSDP config as shipped and with that one change.

What a row shows: per-step losses; `contrastive anchors` (SFT `contrastive_anchors`, GRPO `contrastive/anchors`:
summed over processes) and the GRPO candidate pool `contrastive/candidates` against the local batch; the
FSDP row's losses and saved head beside the DDP row's (same seed, same batches: they should agree to float
round-off); wall time and exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "multiprocess_fsdp.json"
MODEL = ROOT / "runs" / "models" / "smollm2-135m-instruct"
ABT_BUY = ROOT.parent / "shared" / "data" / "real" / "product_matching" / "abt-buy"
WORKER = "benchmarks/fsdp_cpu_worker.py"
CONFIGS = {"ddp": "configs/accelerate/cpu_2proc.yaml", "fsdp": "configs/accelerate/fsdp_cpu_2proc.yaml"}
TAG = "fsdp-worker:"

# ---- rows --------------------------------------------------------------------------------------------------

PER_PROCESS = 4  # SFT rows / GRPO rollouts per process and step
TRAIN = {
    "sft": {"steps": 3, "args": ["--config", "configs/sft_smollm2_matching.yaml", "--batch-size", str(PER_PROCESS)]},
    "grpo": {"steps": 2, "args": ["--config", "configs/grpo_smollm2_matching.yaml", "--batch-size", str(PER_PROCESS),
                                  "--num-generations", "2", "--set", "max_completion_length=16"]},
}
ROWS = ["probe-shipped", "probe-promoted", "sft-1proc", "sft-ddp", "sft-fsdp", "grpo-1proc", "grpo-ddp", "grpo-fsdp"]


def launcher(kind: str) -> list[str]:
    if kind == "1proc":
        return [sys.executable, "-m", "moon_rl"]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", CONFIGS[kind], WORKER]


def row_command(name: str, work: Path) -> tuple[list[str], dict[str, str]]:
    env = {"OMP_NUM_THREADS": "1"}
    if name.startswith("probe-"):
        env["MOON_FSDP_SHIM"] = "0" if name == "probe-shipped" else "1"
        return [*launcher("fsdp"), "probe"], env
    task, kind = name.split("-")
    if kind == "1proc":
        env["OMP_NUM_THREADS"] = "2"  # the two-process rows use one thread each: the same two cores
    data = work / f"{task}-data"
    cmd = [*launcher(kind), task, "--model", str(MODEL), "--data", str(data), "--out", str(work / name),
           *TRAIN[task]["args"], "--max-steps", str(TRAIN[task]["steps"]),
           "--set", "logging_steps=1", "--set", f"save_steps={TRAIN[task]['steps']}", "--set", "report_to=none"]
    return cmd, env


# ---- data --------------------------------------------------------------------------------------------------


def prepare_data(work: Path) -> list[str]:
    cli = [sys.executable, "-m", "moon_rl", "data", "prepare"]
    steps = [
        (work / "abt-buy", [*cli, "--source", "matching", "--input", str(ABT_BUY), "--out", str(work / "abt-buy")]),
        (work / "sft-data", [*cli, "--task", "sft", "--catalog", str(work / "abt-buy"), "--out", str(work / "sft-data"), "--empty-targets"]),
        (work / "grpo-data", [*cli, "--task", "grpo", "--catalog", str(work / "abt-buy"), "--out", str(work / "grpo-data")]),
    ]
    done = []
    for out, cmd in steps:
        if not out.is_dir():
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        done.append(shlex.join(cmd))
    return done


# ---- run ---------------------------------------------------------------------------------------------------

STEP_KEYS = {
    "loss": "loss", "nll": "nll", "contrastive_loss": "contrastive_loss", "retrieval_accuracy": "retrieval_accuracy",
    "anchors": ("contrastive_anchors", "contrastive/anchors"), "candidates": "contrastive/candidates",
    "step_time_s": "step_time", "reward": "reward",
}


def step_logs(out: Path) -> list[dict]:
    state = out / "trainer_state.json"
    if not state.is_file():
        return []
    rows = []
    for h in json.loads(state.read_text())["log_history"]:
        if "loss" not in h:
            continue
        row = {"step": h["step"]}
        for key, src in STEP_KEYS.items():
            for s in (src if isinstance(src, tuple) else (src,)):
                if s in h:
                    row[key] = round(h[s], 6)
        rows.append(row)
    return rows


def run_row(name: str, work: Path) -> dict:
    import shutil

    cmd, extra_env = row_command(name, work)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra_env}
    env.pop("WORLD_SIZE", None)
    if not name.startswith("probe-"):
        shutil.rmtree(work / name, ignore_errors=True)
    shown = " ".join(f"{k}={v}" for k, v in extra_env.items()) + " " + shlex.join(cmd)
    print(f"$ {shown}", flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = round(time.time() - t0, 1)
    output = proc.stdout + proc.stderr
    # Two processes print at once and progress bars share the stream: take each tagged {...} wherever it sits.
    prepared = sorted((json.loads(m) for m in re.findall(re.escape(TAG) + r" (\{[^{}]*\})", output)), key=lambda r: r["rank"])
    row = {"row": name, "command": shown.strip(), "exit": proc.returncode, "wall_s": wall, "prepared_model": prepared}
    if proc.returncode != 0:
        row["tail"] = [line for line in output.splitlines() if line.strip() and "it/s]" not in line][-25:]
    if not name.startswith("probe-"):
        task, kind = name.split("-")
        world = 1 if kind == "1proc" else 2
        row.update(task=task, launcher=kind, world_size=world, local_batch=PER_PROCESS, steps=step_logs(work / name))
        row["saved"] = sorted(p.name for p in (work / name).glob("*.safetensors"))
    print(f"  exit {proc.returncode} in {wall} s", flush=True)
    return row


# ---- compare -----------------------------------------------------------------------------------------------


def max_weight_diff(a: Path, b: Path) -> dict | None:
    """Largest |a - b| over the saved head and LoRA weights of two runs (None when either is missing)."""
    from safetensors.torch import load_file

    out = {}
    for name in ("moon_extras.safetensors", "adapter_model.safetensors"):
        if not (a / name).is_file() or not (b / name).is_file():
            return None
        x, y = load_file(str(a / name)), load_file(str(b / name))
        if x.keys() != y.keys() or any(x[k].shape != y[k].shape for k in x):
            out[name] = "keys or shapes differ"
        else:
            out[name] = max(float((x[k].float() - y[k].float()).abs().max()) for k in x)
    return out


def summary(rows: dict[str, dict], work: Path) -> dict:
    out = {}
    for task in TRAIN:
        one, ddp, fsdp = (rows.get(f"{task}-{k}", {}) for k in ("1proc", "ddp", "fsdp"))
        if not (ddp.get("steps") and fsdp.get("steps")):
            continue
        pair = list(zip(ddp["steps"], fsdp["steps"]))
        anchors = {k: [s.get("anchors") for s in r.get("steps", [])] for k, r in (("1proc", one), ("ddp", ddp), ("fsdp", fsdp))}
        out[task] = {
            "fsdp_model_class": sorted({p["model_class"] for p in fsdp.get("prepared_model", [])}),
            "ddp_model_class": sorted({p["model_class"] for p in ddp.get("prepared_model", [])}),
            "anchors_per_step": anchors,
            "candidates_per_step": {k: [s.get("candidates") for s in r.get("steps", [])] for k, r in (("1proc", one), ("ddp", ddp), ("fsdp", fsdp))},
            "local_batch": PER_PROCESS,
            "fsdp_vs_ddp_max_abs_loss_diff": max(abs(a["loss"] - b["loss"]) for a, b in pair),
            "fsdp_vs_ddp_max_abs_weight_diff": max_weight_diff(work / f"{task}-ddp", work / f"{task}-fsdp"),
            "wall_s": {k: r.get("wall_s") for k, r in (("1proc", one), ("ddp", ddp), ("fsdp", fsdp))},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "multiprocess-fsdp")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", choices=ROWS, default=None)
    parser.add_argument("--force", action="store_true", help="rerun rows that already exited 0")
    args = parser.parse_args()
    from machine import machine_info

    if not (MODEL / "README.md").is_file():
        sys.exit(f"{MODEL}: not there yet (moon-rl models get smollm2-135m-instruct --out {MODEL})")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    rows = {r["row"]: r for r in report.get("rows", [])}
    import accelerate
    import peft
    import transformers
    import trl

    report["data_commands"] = prepare_data(work)
    report["versions"] = {m.__name__: m.__version__ for m in (accelerate, transformers, trl, peft)}
    for name in args.only or ROWS:
        if rows.get(name, {}).get("exit") == 0 and not args.force:
            continue
        load = os.getloadavg()[0]
        rows[name] = {**run_row(name, work), "machine": machine_info(load)}
        report["rows"] = [rows[n] for n in ROWS if n in rows]
        report["summary"] = summary(rows, work)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report.get("summary", {}), indent=1))


if __name__ == "__main__":
    main()
