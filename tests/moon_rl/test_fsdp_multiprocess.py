"""Two processes under FSDP2 on CPU (gloo), through benchmarks/fsdp_cpu_worker.py (accelerate 1.16 alone runs an
FSDP config as DDP on a CPU; see that file): the policy is really sharded, each micro-batch's contrastive
negatives include the other process's rollouts, the head is saved whole (from the gathered state dict, not
this process's shard), --resume continues exactly where the run stopped, and a SHARDED_STATE_DICT config
still leaves a loadable final folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from grpo_support import ROOT, grpo_dataset_dir

WORKER = ROOT / "benchmarks" / "fsdp_cpu_worker.py"
FSDP_CPU = ROOT / "configs" / "accelerate" / "fsdp_cpu_2proc.yaml"


def launch(config: Path, model: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), str(WORKER),
        "grpo", "--model", str(model), "--data", str(grpo_dataset_dir("text")), "--out", str(out),
        "--config", str(ROOT / "configs/grpo_tiny.yaml"), "--batch-size", "4", "--num-generations", "2",
        "--set", "max_completion_length=8", "--set", "logging_steps=1", "--set", "report_to=none", "--set", "save_steps=1",
        "--set", "embedding_dim=256", *extra,  # a head with weights, to see it saved whole
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    prepared = [json.loads(line.split("fsdp-worker:", 1)[1]) for line in result.stdout.splitlines() if "fsdp-worker:" in line]
    return result, prepared


def losses(out: Path) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h}


def test_full_extras_state_takes_the_gathered_tensors():
    from moon_rl.trainers.common import full_extras_state

    live = nn.Linear(3, 2)
    assert full_extras_state(live, None) is None and full_extras_state(live, {}) is None  # plain / DDP runs
    gathered = {"weight": torch.ones(2, 3)}  # ZeRO-3 can leave a key out: this process's own fills it
    state = full_extras_state(live, gathered)
    assert state.keys() == {"weight", "bias"}
    assert state["weight"] is gathered["weight"] and torch.equal(state["bias"], live.bias)


def test_fsdp_two_processes_shard_gather_save_and_resume(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    model, out = tiny_model_dir("qwen2"), tmp_path / "run"
    _, prepared = launch(FSDP_CPU, model, out, "--max-steps", "2")

    # Sharded: both processes hold FSDP2 modules (one unit per decoder layer) whose parameters are DTensors.
    assert sorted(p["rank"] for p in prepared) == [0, 1]
    for p in prepared:
        assert p["distributed_type"] == "FSDP" and p["dtensor_params"] == p["params"] > 0
        assert "FSDPQwen2DecoderLayer" in p["fsdp_units"]
    logs = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "contrastive/candidates" in h]
    assert len(logs) == 2
    assert all(h["contrastive/candidates"] == 8 for h in logs)  # 4 rollouts per process; the pool is both processes' 8

    # The head is written whole, in the final folder and in each checkpoint (a shard would be half the rows).
    hidden = json.loads((model / "config.json").read_text())["hidden_size"]
    for folder in (out, out / "checkpoint-1"):
        head = load_file(str(folder / "moon_extras.safetensors"))
        assert head["head.proj.weight"].shape == (256, hidden)
        assert (folder / "adapter_model.safetensors").is_file()

    # --resume from step 1 trains step 2 again and logs the same loss (the head came back from the checkpoint).
    before = losses(out)
    launch(FSDP_CPU, model, out, "--max-steps", "2", "--resume", str(out / "checkpoint-1"))
    assert abs(losses(out)[2] - before[2]) < 1e-5


def test_fsdp_sharded_state_dict_config_still_saves_a_loadable_run(tiny_model_dir, tmp_path):
    """configs/accelerate/fsdp.yaml asks for SHARDED_STATE_DICT, under which HF's save_model writes no weights;
    moon-rl saves full state dicts instead, so the final folder has the adapter and the head."""
    sharded = tmp_path / "fsdp_sharded.yaml"
    sharded.write_text(FSDP_CPU.read_text().replace("FULL_STATE_DICT", "SHARDED_STATE_DICT"))
    out = tmp_path / "run"
    result, _ = launch(sharded, tiny_model_dir("qwen2"), out, "--max-steps", "1")
    assert "FULL_STATE_DICT" in result.stderr  # said so
    assert (out / "adapter_model.safetensors").is_file() and (out / "moon_extras.safetensors").is_file()
    assert (out / "checkpoint-1" / "moon_extras.safetensors").is_file()
