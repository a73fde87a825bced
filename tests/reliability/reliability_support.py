"""Paths shared by the reliability tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SFT_CONFIG = ROOT / "configs" / "sft_tiny.yaml"
CUSTOM_REWARDS = ROOT / "tests" / "reward_fns" / "custom_rewards.py"  # length_bonus, broken_nan, broken_short
HOSTILE_REWARDS = HERE / "hostile_rewards.py"  # constant, always_raises


def tiny_sft_args(model, data, out, *extra) -> list:
    """`moon-rl sft` on the tiny text model, saving every step (the runs these tests kill and resume)."""
    return [
        "sft", "--model", model, "--data", data, "--out", out, "--config", SFT_CONFIG, "--batch-size", "4",
        "--set", "max_length=128", "--set", "report_to=none", "--set", "logging_steps=1", "--set", "save_steps=1",
        "--set", "embedding_dim=32", *extra,
    ]  # fmt: skip
