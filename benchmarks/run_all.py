"""Run every benchmark, then write benchmarks/RESULTS.md: the one command behind the results page.

    .venv/bin/python benchmarks/run_all.py [--quick] [--skip NAME ...] [--only NAME ...]

Runs, in order (each a subprocess with OMP_NUM_THREADS=1 and HF_HUB_OFFLINE=1; each writes its own
benchmarks/results/<name>.json), then `make_results.py`. Rough wall times on 2 shared CPU cores, default / --quick:
  synth_speed  10,000 synthetic products                             ~0.5 min
  sft_tiny     SFT of the tiny VL model (300 / 60 steps)             ~4 / 1 min
  grpo_speed   MoonGRPOTrainer vs trl.GRPOTrainer step time          ~5 / 2 min
  grpo_tiny    does joint GRPO learn on the tiny VL model           ~20 / 3 min
  grpo_tiny_control  the same with the contrastive term inert         ~17 / 3 min
  pairwise_tiny  SFT + GRPO on synthetic A-vs-B pairs, held-out acc.  ~7 / 1 min
  eval_speed   eval embeddings/s and chunked ranking                 ~2 min
  ablation     the 7-row ablation, 2 seeds in parallel               ~35 / 15 min
  real_data    AE-110K, OA-Mine, abt-buy, walmart-amazon             ~15 / 8 min
  cost         SFT tokens/s, GRPO step, peak RSS vs TRL               ~3 min
A failing benchmark is reported and the others still run; its old results file (if any) is kept.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# grpo_tiny's control: the contrastive term computed and logged, its gradients far below AdamW's eps.
CONTROL = ["--no-eval", "--set", "contrastive_weight=1e-12", "--out", str(HERE / "results/grpo_tiny_control.json")]
SCRIPTS = {"grpo_tiny_control": "grpo_tiny"}  # result names that reuse another benchmark's script

# name -> (arguments, arguments with --quick)
BENCHMARKS = {
    "synth_speed": ([], []),
    "sft_tiny": (["--threads", "1"], ["--threads", "1", "--steps", "60", "--products", "96"]),
    "grpo_speed": ([], ["--steps", "5"]),
    "grpo_tiny": ([], ["--sft-steps", "150", "--grpo-steps", "20", "--window", "5"]),
    "grpo_tiny_control": (CONTROL, ["--sft-steps", "150", "--grpo-steps", "20", "--window", "5", *CONTROL]),
    "pairwise_tiny": ([], ["--pairs", "200", "--sft-steps", "100", "--grpo-steps", "10", "--window", "5"]),
    "eval_speed": ([], []),
    "ablation": ([], ["--quick"]),
    "real_data": ([], ["--quick"]),
    "cost": ([], ["--sft-steps", "8", "--grpo-steps", "2"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller settings everywhere")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--skip", nargs="+", choices=list(BENCHMARKS), default=[])
    args = parser.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    failed = []
    for name in [n for n in args.only if n not in args.skip]:
        script = HERE / f"{SCRIPTS.get(name, name)}.py"
        if not script.is_file():
            print(f"== {name}: {script} missing, skipped", flush=True)
            continue
        cmd = [sys.executable, str(script), *BENCHMARKS[name][1 if args.quick else 0]]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(cmd, env=env).returncode
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f}s", flush=True)
        if code:
            failed.append(name)
    subprocess.run([sys.executable, str(HERE / "make_results.py")], env=env, check=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (RESULTS.md uses their previous results files, if any)")


if __name__ == "__main__":
    main()
