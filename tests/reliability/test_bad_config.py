"""Hostile configuration and plug-ins: each fails with one clear line naming the file / field / reward /
sample (exit status 2), or, for rewards with `--reward-errors skip`, is skipped and counted in the logs.

Covered: YAML with an unknown key, a wrong type, invalid syntax; a model path that does not exist (local
path or hub id, offline); a max_length that leaves no trainable row; a reward that returns the wrong
number of values, NaN, or raises. (Hostile *data* is tests/reliability/test_hostile_data.py.)
"""

from __future__ import annotations

import json
import math
import signal

import pytest
from reliability_support import CUSTOM_REWARDS, HOSTILE_REWARDS, SFT_CONFIG


def error_line(result) -> str:
    """The single `error: ...` line of a failed command (and it must be the only one)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


# ---- YAML configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sft", "grpo"])
@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("max_steps: 10\nlerning_rate: 0.001\n", ["unknown config key 'lerning_rate'", "Did you mean learning_rate"]),
        ("max_steps: ten\n", ["field 'max_steps' expects int, got 'ten'"]),
        ("learning_rate: null\n", ["field 'learning_rate' expects float, got null"]),
        ("lora_target_modules: 5\n", ["field 'lora_target_modules' expects str | list[str], got 5"]),
        ("lr_scheduler_type: sideways\n", ["field 'lr_scheduler_type' = 'sideways' is invalid", "not a valid SchedulerType"]),
        ("report_to: 5\n", ["field 'report_to' expects", "got 5"]),
        ("max_steps: 10\n  bf16: true\n", ["not valid YAML at line 2, column 7: mapping values are not allowed here"]),
        ("- max_steps: 10\n", ["expected a mapping of config fields"]),
    ],
    ids=["unknown-key", "int", "null", "list", "enum", "report_to", "syntax", "top-level-list"],
)
def test_bad_yaml_names_file_and_field(command, yaml_text, expected, cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml_text)
    line = error_line(cli([command, "--model", tmp_path / "m", "--data", tmp_path / "d", "--out", tmp_path / "o", "--config", config]))
    assert line.startswith(f"error: {config}: ")
    for text in expected:
        assert text in line


def test_grpo_reward_list_of_wrong_type(cli, tmp_path):
    config = tmp_path / "grpo.yaml"
    config.write_text("rewards: 5\n")
    line = error_line(cli(["grpo", "--model", tmp_path / "m", "--data", tmp_path / "d", "--out", tmp_path / "o", "--config", config]))
    assert f"{config}: field 'rewards' expects list[str] | null, got 5" in line


# ---- models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sft", "grpo", "eval"])
@pytest.mark.parametrize("model", ["{tmp}/no/such/model", "acme/no-such-model"], ids=["path", "hub-id-offline"])
def test_missing_model_is_named(command, model, cli, sft_text_dataset_dir, tmp_path):
    model = model.format(tmp=tmp_path)
    line = error_line(cli([command, "--model", model, "--data", sft_text_dataset_dir, "--out", tmp_path / "o"]))
    assert repr(model) in line or model in line


def test_max_length_that_leaves_no_row_fails_instead_of_training_nothing(cli, tiny_model_dir, sft_text_dataset_dir, tmp_path):
    line = error_line(
        cli([
            "sft", "--model", tiny_model_dir("qwen2"), "--data", sft_text_dataset_dir, "--out", tmp_path / "o",
            "--config", SFT_CONFIG, "--max-steps", "1", "--set", "max_length=16", "--set", "report_to=none",
        ])  # fmt: skip
    )
    assert "no training rows left" in line and "max_length=16" in line
    assert not list((tmp_path / "o").glob("checkpoint-*")) and not (tmp_path / "o" / "adapter_model.safetensors").exists()


# ---- rewards (user code) ---------------------------------------------------------------------------


@pytest.fixture
def grpo_args(tiny_model_dir, tmp_path):
    from grpo_support import grpo_dataset_dir

    def build(reward: str, *extra: str) -> list:
        return [
            "grpo", "--model", tiny_model_dir("qwen2"), "--data", grpo_dataset_dir("text"), "--out", tmp_path / "o",
            "--batch-size", "8", "--num-generations", "2", "--max-steps", "1", "--seed", "0",
            "--reward", "format", "--reward", reward,
            "--set", "max_completion_length=8", "--set", "logging_steps=1", "--set", "report_to=none", "--set", "embedding_dim=32",
            *extra,
        ]  # fmt: skip

    return build


@pytest.mark.parametrize(
    "reward, pattern",
    [
        (f"{CUSTOM_REWARDS}:broken_short", r"reward 'broken_short' broke the reward contract on whole batch: length: returned 7 values for 8 completions"),
        (f"{CUSTOM_REWARDS}:broken_nan", r"reward 'broken_nan' broke the reward contract on sample 1 \(id='[^']+'\): non-finite: nan"),
        (f"{HOSTILE_REWARDS}:always_raises", r"reward 'always_raises' raised KeyError: 'attributes' on sample 0 \(id='[^']+'\)"),
    ],
    ids=["wrong-length", "nan", "raises"],
)
def test_broken_reward_stops_with_reward_and_sample_named(reward, pattern, cli, grpo_args, tmp_path):
    import re

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    line = error_line(cli(grpo_args(reward)))
    assert re.search(pattern, line), line
    assert "--reward-errors skip" in line or "reward contract" in line
    assert not list((tmp_path / "o").glob("checkpoint-*"))
    # Training raised: the interrupt handlers must still have been put back (Ctrl-C works again).
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


def test_skip_mode_continues_and_counts(cli, grpo_args, tmp_path):
    result = cli(grpo_args(f"{CUSTOM_REWARDS}:broken_nan", "--reward-errors", "skip"))
    assert result.exit_code == 0, result.output
    logs = [h for h in json.loads((tmp_path / "o" / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(logs) == 1
    assert logs[0]["rewards/broken_nan/skipped"] == 4  # the odd half of 8 completions
    assert math.isfinite(logs[0]["loss"]) and math.isfinite(logs[0]["reward"])
