"""Every command on the real pretrained base, end to end, as a user runs them (issue 14's "done when").

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/smollm2_e2e.py [--workdir runs/smollm2-e2e]

On SmolLM2-135M-Instruct (`moon-rl models get`) and abt-buy (real offers, ../shared/data/real), a few steps each:
`data prepare` (catalog, SFT and GRPO data), LoRA `sft` with the contrastive term (pooling "input") stopped at
step 2 and continued with `--resume latest` to step 4, joint contrastive `grpo` from it (CPU rollouts),
`eval` (retrieval, sampled and said so), `export-adapter --merge --sentence-transformers` (its own verify step
compares the reloaded export and the sentence-transformers folder with the source), then an independent check
that plain `SentenceTransformer(EXPORT/st).encode(texts)` equals `moon_rl.load(RUN).encode(texts)`.
Writes benchmarks/results/smollm2_e2e.json: each stage's command, exit status and wall time, and the check.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "smollm2_e2e.json"
ABT_BUY = ROOT.parent / "shared" / "data" / "real" / "product_matching" / "abt-buy"
CLI = [sys.executable, "-m", "moon_rl"]
TEXTS = ["sony turntable pslx350h", "bose acoustimass 5 series iii speaker system am53bk", "panasonic 50' plasma tv th50pz85u"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "smollm2-e2e")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from machine import machine_info

    load = os.getloadavg()[0]
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    base, catalog = work / "smollm2", work / "abt-buy"
    sft_data, grpo_data, sft, grpo = work / "sft-data", work / "grpo-data", work / "sft", work / "grpo"
    few = ["--set", "save_steps=2", "--set", "logging_steps=1"]
    stages = [
        ("models get", [*CLI, "models", "get", "smollm2-135m-instruct", "--out", str(base)]),
        ("data prepare --source", [*CLI, "data", "prepare", "--source", "matching", "--input", str(ABT_BUY), "--out", str(catalog)]),
        ("data prepare --task sft", [*CLI, "data", "prepare", "--task", "sft", "--catalog", str(catalog), "--out", str(sft_data), "--empty-targets"]),
        ("data prepare --task grpo", [*CLI, "data", "prepare", "--task", "grpo", "--catalog", str(catalog), "--out", str(grpo_data)]),
        ("sft (to step 2)", [*CLI, "sft", "--model", str(base), "--data", str(sft_data), "--out", str(sft), "--config",
                             "configs/sft_smollm2_matching.yaml", "--set", "max_steps=2", *few]),
        ("sft --resume latest (to step 4)", [*CLI, "sft", "--model", str(base), "--data", str(sft_data), "--out", str(sft), "--config",
                                             "configs/sft_smollm2_matching.yaml", "--set", "max_steps=4", *few, "--resume", "latest"]),
        ("grpo", [*CLI, "grpo", "--model", str(sft), "--data", str(grpo_data), "--out", str(grpo), "--config",
                  "configs/grpo_smollm2_matching.yaml", "--set", "max_steps=2", *few]),
        ("eval", [*CLI, "eval", "--model", str(grpo), "--baseline", str(base), "--data", str(catalog), "--out", str(work / "eval"),
                  "--tasks", "retrieval", "--max-queries", "20", "--max-products", "100"]),
        ("export-adapter --merge --sentence-transformers", [*CLI, "export-adapter", str(grpo), "--out", str(work / "export"), "--merge",
                                                            "--sentence-transformers"]),
    ]
    report = {"stages": [], "machine": machine_info(load)}
    for name, cmd in stages:
        t0 = time.time()
        print(f"$ {shlex.join(cmd)}", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        tail = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip() and "it/s]" not in line][-3:]
        report["stages"].append({"stage": name, "command": shlex.join(cmd), "exit": proc.returncode, "seconds": round(time.time() - t0, 1), "tail": tail})
        print(f"  exit {proc.returncode} in {time.time() - t0:.0f} s: {tail[-1] if tail else ''}", flush=True)
        if proc.returncode != 0:
            break
    else:
        report["resumed"] = "resuming from" in " ".join(report["stages"][5]["tail"]) or (sft / "checkpoint-4").is_dir()
        report["sentence_transformers_check"] = st_check(grpo, work / "export" / "st")
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({s["stage"]: (s["exit"], s["seconds"]) for s in report["stages"]}, indent=1))
    print("sentence-transformers check:", report.get("sentence_transformers_check"))


def st_check(run: Path, st_dir: Path) -> dict:
    """Plain sentence-transformers (no moon-rl code in the loop) against moon_rl.load(run).encode."""
    import torch
    from sentence_transformers import SentenceTransformer

    import moon_rl

    st = torch.as_tensor(SentenceTransformer(str(st_dir), device="cpu").encode(TEXTS))
    ours = moon_rl.load(run).encode(TEXTS, progress=False)
    cos = torch.nn.functional.cosine_similarity(st.float(), ours.float(), dim=-1)
    return {"texts": len(TEXTS), "min_cosine": round(float(cos.min()), 7), "passes_1e-4": bool(cos.min() >= 1 - 1e-4)}


if __name__ == "__main__":
    main()
