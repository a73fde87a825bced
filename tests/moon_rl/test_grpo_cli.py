"""`moon-rl grpo` and `moon-rl vllm-serve` from the command line: help, the vLLM extra check, reward specs
(built-in, file, module, weights, error modes), a tiny end-to-end run with checkpoints, and --resume."""

from __future__ import annotations

import json

import pytest
from grpo_support import ROOT, fast_config, grpo_dataset_dir
from typer.testing import CliRunner

import moon_rl.trainers.vllm_support as vllm_support
from moon_rl.trainers.checkpoints import is_complete
from moon_rl.cli import app
from moon_rl.errors import MissingExtraError, MoonError

runner = CliRunner()


@pytest.mark.parametrize("command", ["grpo", "vllm-serve"])
def test_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--model" in result.output
    if command == "grpo":
        for option in ("--reward", "--use-vllm", "--vllm-mode", "--num-processes", "--resume", "--set", "--num-generations"):
            assert option in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["grpo", "--use-vllm", "--vllm-mode", "server"],
        ["grpo", "--use-vllm"],
        ["vllm-serve", "--model", "Qwen/Qwen2.5-VL-3B-Instruct"],
    ],
)
def test_vllm_flags_without_the_extra_fail_up_front(monkeypatch, tmp_path, args):
    monkeypatch.setattr(vllm_support, "vllm_available", lambda: False)
    out = tmp_path / "run"
    extra = ["--model", str(tmp_path / "no-model"), "--data", str(tmp_path / "no-data"), "--out", str(out)] if args[0] == "grpo" else []
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 2
    assert "error:" in result.output and "pip install 'moon-rl[vllm]'" in result.output
    assert "no-model" not in result.output and "no-data" not in result.output  # checked before anything else
    assert not out.exists()


def test_trainer_checks_the_vllm_extra_before_loading(monkeypatch, tmp_path):
    from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer

    monkeypatch.setattr(vllm_support, "vllm_available", lambda: False)
    with pytest.raises(MissingExtraError, match=r"pip install 'moon-rl\[vllm\]'"):
        MoonGRPOTrainer(model=None, args=fast_config(tmp_path, use_vllm=True))


def test_reward_specs_defaults_weights_and_conflicts(tmp_path):
    from moon_rl.trainers.grpo.run import build_rewards

    config = fast_config(tmp_path)
    funcs = build_rewards(config)
    # The default rewards, weighted 1 each: TRL's meaning of reward_weights=None (the config is not changed).
    assert [f.__name__ for f in funcs] == ["format", "attribute_f1"] and config.reward_weights is None
    config = fast_config(tmp_path, rewards=["format=0.5", f"{ROOT}/tests/reward_fns/custom_rewards.py:length_bonus=2"], reward_errors="skip")
    funcs = build_rewards(config)
    assert [f.__name__ for f in funcs] == ["format", "length_bonus"] and config.reward_weights == [0.5, 2.0]
    assert all(f.on_error == "skip" for f in funcs)
    with pytest.raises(MoonError, match="given twice"):
        build_rewards(fast_config(tmp_path, rewards=["format=0.5"], reward_weights=[1.0]))


def _summary(output: str) -> dict:
    """The JSON summary `moon-rl grpo` prints last (training logs come before it)."""
    return json.loads(output[output.rindex('{\n  "out"'):])


def _grpo_args(model, data, out, *extra):
    return [
        "grpo", "--model", str(model), "--data", str(data), "--out", str(out), "--config", str(ROOT / "configs/grpo_tiny.yaml"),
        "--batch-size", "4", "--num-generations", "2", "--seed", "0",
        "--set", "max_completion_length=8", "--set", "logging_steps=1", "--set", "save_steps=1", "--set", "report_to=none",
        *extra,
    ]


def test_end_to_end_with_custom_rewards_checkpoints_and_resume(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))  # `tests.reward_fns.custom_rewards` importable as a module path
    model, data, out = tiny_model_dir("qwen2"), grpo_dataset_dir("text"), tmp_path / "run"
    rewards = [
        "--reward", "format=0.5",
        "--reward", "tests/reward_fns/custom_rewards.py:length_bonus=0.2",  # a file
        "--reward", "tests.reward_fns.custom_rewards:keyword_reward(word=navy)",  # a module, a factory with arguments
        "--reward", "tests/reward_fns/custom_rewards.py:broken_nan=0.1",  # breaks the contract: skipped, counted
        "--reward-errors", "skip",
    ]
    result = runner.invoke(app, _grpo_args(model, data, out, "--max-steps", "2", *rewards))
    assert result.exit_code == 0, result.output
    assert _summary(result.output)["global_step"] == 2

    for name in ("adapter_config.json", "adapter_model.safetensors", "moon_extras.safetensors", "moon_extras.json", "trainer_state.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "moon_rl.json").read_text())
    assert info["kind"] == "grpo" and info["config"]["reward_weights"] == [0.5, 0.2, 1.0, 0.1]
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    step_logs = [h for h in logs if "reward" in h]
    assert len(step_logs) == 2
    for key in ("rewards/format/mean", "rewards/length_bonus/mean", "rewards/keyword_reward/mean", "contrastive/anchors"):
        assert all(key in h for h in step_logs), key
    # Logged for micro-batches holding a positive pair (2 prompts per micro-batch here: not always).
    assert any("contrastive_loss" in h and "retrieval_accuracy" in h for h in step_logs)
    assert all(h["rewards/broken_nan/skipped"] > 0 for h in step_logs)
    for step in (1, 2):
        ckpt = out / f"checkpoint-{step}"
        assert is_complete(ckpt) and (ckpt / "moon_extras.safetensors").is_file() and (ckpt / "adapter_model.safetensors").is_file()

    resumed = runner.invoke(app, _grpo_args(model, data, out, "--max-steps", "3", "--resume", "latest", *rewards))
    assert resumed.exit_code == 0, resumed.output
    assert _summary(resumed.output)["global_step"] == 3
    assert (out / "checkpoint-3").is_dir()


def test_a_failing_reward_stops_training_by_default(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, _grpo_args(
        tiny_model_dir("qwen2"), grpo_dataset_dir("text"), tmp_path / "run", "--max-steps", "1",
        "--reward", "tests/reward_fns/custom_rewards.py:broken_short",
    ))
    assert result.exit_code == 2
    assert "error: reward 'broken_short'" in result.output and "returned 3 values for 4 completions" in result.output
