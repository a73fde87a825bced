"""Paths shared by the reliability tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SFT_CONFIG = ROOT / "configs" / "sft_tiny.yaml"
CUSTOM_REWARDS = ROOT / "tests" / "reward_fns" / "custom_rewards.py"  # length_bonus, broken_nan, broken_short
HOSTILE_REWARDS = HERE / "hostile_rewards.py"  # constant, always_raises
