"""Time `moon-rl data synth` for 10,000 products (the issue asks for under a minute) and record the result.

    .venv/bin/python benchmarks/synth_speed.py [--products 10000] [--image-size 64] [--seed 0]

Runs the real command in a subprocess (so start-up and import time count), writes the catalog to a
temporary folder, and saves wall time, throughput and machine facts to benchmarks/results/synth_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "synth_speed.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    moon_rl = Path(sys.executable).parent / "moon-rl"
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "catalog"
        cmd = [str(moon_rl), "data", "synth", "--out", str(out), "--products", str(args.products),
               "--seed", str(args.seed), "--image-size", str(args.image_size)]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
        summary = json.loads(done.stdout)
        size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6

    result = {
        "command": " ".join(["moon-rl", *cmd[1:4], "DIR", *cmd[5:]]),
        "products": summary["products"],
        "groups": summary["groups"],
        "image_size": args.image_size,
        "wall_seconds": round(seconds, 2),
        "products_per_second": round(summary["products"] / seconds, 1),
        "catalog_mb": round(size_mb, 2),
        "target_seconds": 60,
        "meets_target": seconds < 60,
        "machine": machine_info(load_before),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
