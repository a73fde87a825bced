"""Every YAML recipe under configs/ loads and validates into its config dataclass.

The file name prefix picks the builder (`sft_*.yaml` -> MoonSFTConfig via `build_sft_configs`). A recipe
whose prefix has no builder fails: a new trainer adds its prefix to BUILDERS with its config.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moon_rl.config_io import read_yaml
from moon_rl.errors import MoonError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))


def _build_sft(path: Path, overrides: dict, tmp_path: Path):
    from moon_rl.trainers.sft.config import MoonSFTConfig, build_sft_configs

    flags = {"output_dir": str(tmp_path / "out")}
    if "model" not in read_yaml(path):
        flags["model"] = "placeholder-model"  # recipes for tiny models take --model on the command line
    config, model_args = build_sft_configs(path, overrides, **flags)
    assert isinstance(config, MoonSFTConfig)
    return config, model_args


def _build_grpo(path: Path, overrides: dict, tmp_path: Path):
    from moon_rl.trainers.grpo.config import MoonGRPOConfig, build_grpo_configs

    flags = {"output_dir": str(tmp_path / "out")}
    if "model" not in read_yaml(path):
        flags["model"] = "placeholder-model"
    config, model_args = build_grpo_configs(path, overrides, **flags)
    assert isinstance(config, MoonGRPOConfig)
    return config, model_args


BUILDERS = {"sft_": _build_sft, "grpo_": _build_grpo}


def _cpu_overrides() -> dict:
    """GPU recipes (bf16) only validate on a machine with a GPU; here they are checked as a CPU run."""
    import torch

    return {} if torch.cuda.is_available() else {"use_cpu": True}


def test_there_are_recipes():
    assert any(p.name.startswith("sft_") for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_loads_and_validates(path, tmp_path, monkeypatch):
    from moon_rl.trainers import vllm_support

    # A GPU recipe's use_vllm makes its config check the vLLM extra as it is built; this machine has none, so
    # that one check is taken as passed here (tests/moon_rl/test_grpo_cli.py tests the check itself).
    monkeypatch.setattr(vllm_support, "vllm_available", lambda: True)
    prefix = next((p for p in BUILDERS if path.name.startswith(p)), None)
    assert prefix is not None, f"{path.name}: no config builder for this recipe's prefix; add it to BUILDERS"
    config, model_args = BUILDERS[prefix](path, _cpu_overrides(), tmp_path)
    values = read_yaml(path)
    for key, value in values.items():  # every key landed in one of the two dataclasses, unchanged
        target = model_args if hasattr(model_args, key) and key not in ("seed",) else config
        if key in ("report_to",) or key == "bf16":
            continue  # resolved in __post_init__ ("auto" -> a list) / overridden for CPU validation
        got = getattr(target, key)
        got = got.value if hasattr(got, "value") else got  # enums such as lr_scheduler_type
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, key
    head = path.read_text(encoding="utf-8").splitlines()[:12]
    assert any(line.startswith("#") and "moon-rl " in line for line in head), "header must show the command that runs it"


def test_unknown_key_lists_valid_ones(tmp_path):
    from moon_rl.trainers.sft.config import build_sft_configs

    bad = tmp_path / "sft_bad.yaml"
    bad.write_text("contrastive_wieght: 0.5\n", encoding="utf-8")
    with pytest.raises(MoonError, match=r"unknown config key 'contrastive_wieght'.*Did you mean contrastive_weight.*Valid keys:.*lora_r"):
        build_sft_configs(bad, {}, model="m", output_dir=str(tmp_path))


def test_later_layers_win_and_model_keys_are_split(tmp_path):
    from moon_rl.trainers.sft.config import build_sft_configs

    recipe = tmp_path / "sft_x.yaml"
    recipe.write_text("learning_rate: 1.0e-3\nlora_r: 4\ncontrastive_weight: 0.3\n", encoding="utf-8")
    config, model_args = build_sft_configs(recipe, {"lora_r": 8, "contrastive_weight": 0.0}, model="m", output_dir=str(tmp_path), learning_rate=5e-4)
    assert (config.learning_rate, config.contrastive_weight, model_args.lora_r, model_args.model) == (5e-4, 0.0, 8, "m")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"pooling": "max"}, "pooling must be one of"),
        ({"contrastive_weight": -1.0}, "contrastive_weight must be >= 0"),
        ({"packing": True}, "packing"),
    ],
)
def test_invalid_values_fail(overrides, match, tmp_path):
    from moon_rl.trainers.sft.config import build_sft_configs

    with pytest.raises(MoonError, match=match):
        build_sft_configs(None, overrides, model="m", output_dir=str(tmp_path))


def test_model_and_output_are_required(tmp_path):
    from moon_rl.trainers.sft.config import build_sft_configs

    with pytest.raises(MoonError, match="--model"):
        build_sft_configs(None, {}, output_dir=str(tmp_path))
    with pytest.raises(MoonError, match="--out"):
        build_sft_configs(None, {}, model="m")
