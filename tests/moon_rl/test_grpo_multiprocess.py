"""`moon-rl grpo --num-processes 2` on CPU: two data-parallel processes (accelerate launch, gloo) train a
few steps together, and each micro-batch's contrastive negatives include the other process's rollouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from grpo_support import ROOT, grpo_dataset_dir


def test_two_processes_gather_negatives(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    moon_rl = Path(sys.executable).with_name("moon-rl")
    command = [
        str(moon_rl), "grpo", "--num-processes", "2",
        "--model", str(tiny_model_dir("qwen2")), "--data", str(grpo_dataset_dir("text")), "--out", str(out),
        "--config", str(ROOT / "configs/grpo_tiny.yaml"), "--max-steps", "2", "--batch-size", "4", "--num-generations", "2",
        "--set", "max_completion_length=8", "--set", "logging_steps=1", "--set", "report_to=none",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]

    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    steps = [h for h in logs if "contrastive/candidates" in h]
    assert len(steps) == 2
    # 4 rollouts per process and micro-batch; the candidate pool is both processes' 8.
    assert all(h["contrastive/candidates"] == 8 for h in steps)
    assert all("loss" in h and "reward" in h for h in steps)
    assert (out / "moon_extras.safetensors").is_file() and (out / "adapter_model.safetensors").is_file()
