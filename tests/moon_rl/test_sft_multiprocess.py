"""`moon-rl sft` under `accelerate launch --num_processes 2 --multi_gpu` on CPU (as `--num-processes` launches GRPO) (gloo): the logged `nll` is the next-token
loss itself, not a share of it. TRL's SFT loss is already this process's token mean (it multiplies back by the
number of processes what `num_items_in_batch`, counted over every rank, divided), so the step's logged loss is
`nll + contrastive_weight * contrastive_loss` exactly, whatever the number of processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from grpo_support import ROOT


def test_two_process_sft_logs_the_whole_nll(tiny_model_dir, sft_text_dataset_dir, tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu", "-m", "moon_rl", "sft",
        "--model", str(tiny_model_dir("qwen2")), "--data", str(sft_text_dataset_dir), "--out", str(out),
        "--config", str(ROOT / "configs/sft_tiny.yaml"), "--max-steps", "2", "--batch-size", "4",
        "--set", "logging_steps=1", "--set", "report_to=none", "--set", "save_steps=100",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    logs = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "nll" in h and "contrastive_loss" in h]
    # Anchors are summed over processes: more than one process's 4 rows shows both took part.
    assert len(logs) == 2 and any(h["contrastive/anchors"] > 4 for h in logs)
    for h in logs:  # contrastive_weight 0.5 in configs/sft_tiny.yaml
        assert abs(h["loss"] - (h["nll"] + 0.5 * h["contrastive_loss"])) < 1e-3 * max(1.0, h["loss"]), h
