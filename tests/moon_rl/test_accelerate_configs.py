"""Every configs/accelerate/*.yaml goes through accelerate's own launch-time parsing, without launching anything.

`accelerate launch --config_file X` first runs `_validate_launch_command` (which loads the file with
`load_config_from_file`: unknown keys fail there), then builds the environment its launcher hands the
processes (`prepare_multi_gpu_env` / `prepare_deepspeed_cmd_env`), from which each process builds its FSDP or
DeepSpeed plugin. This test runs those same steps, so a typo, a wrong value or a setting the launcher drops
fails here rather than on a rented GPU. DeepSpeed itself is not needed: the plugin is built from the env alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))


def launch_env(path: Path):
    """What `accelerate launch --config_file path train.py` resolves, up to the point where it would start processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as `launch_command` does before `deepspeed_launcher`
        fields = [*defaults.deepspeed_config.keys(), *(["mixed_precision"] if mp_from_config else [])]
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, defaults, env


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"cpu_2proc.yaml", "multi_gpu.yaml", "fsdp.yaml", "fsdp_cpu_2proc.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_as_accelerate_launch_would(path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    raw = yaml.safe_load(path.read_text())
    header = path.read_text().split("\ncompute_environment")[0]
    assert "--accelerate-config" in header or "accelerate launch" in header, f"{path.name}: the header shows no command"

    config = load_config_from_file(str(path))  # unknown keys raise here
    args, _, env = launch_env(path)

    # The file's choices survive into what the processes receive.
    assert args.num_processes == raw["num_processes"]
    assert env["ACCELERATE_MIXED_PRECISION"] == str(raw["mixed_precision"])
    kind = config.distributed_type
    assert [args.use_deepspeed, args.use_fsdp, args.multi_gpu] == [
        kind == DistributedType.DEEPSPEED, kind == DistributedType.FSDP, kind == DistributedType.MULTI_GPU
    ]
    if kind == DistributedType.DEEPSPEED:
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(raw["deepspeed_config"]["zero_stage"])
        assert raw["deepspeed_config"]["zero_stage"] in (0, 1, 2, 3)  # DeepSpeed's stages; accelerate passes any int on
    if kind == DistributedType.FSDP:
        assert env["ACCELERATE_USE_FSDP"] == "true"
        assert env["FSDP_VERSION"] == str(raw["fsdp_config"]["fsdp_version"])
        assert env["FSDP_STATE_DICT_TYPE"] == raw["fsdp_config"]["fsdp_state_dict_type"]


@pytest.mark.parametrize("path", [p for p in CONFIGS if "deepspeed_config" in p.read_text() or "fsdp_config" in p.read_text()], ids=lambda p: p.name)
def test_each_process_builds_its_plugin(path):
    """The plugin every process builds from the launcher's environment (what `Accelerator()` does)."""
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin, patch_environment

    raw = yaml.safe_load(path.read_text())
    _, _, env = launch_env(path)
    with patch_environment(**env):
        if "deepspeed_config" in raw:
            plugin = DeepSpeedPlugin()
            assert plugin.zero_stage == raw["deepspeed_config"]["zero_stage"]
            assert plugin.deepspeed_config["zero_optimization"]["stage"] == raw["deepspeed_config"]["zero_stage"]
            if raw["deepspeed_config"].get("zero3_save_16bit_model"):
                assert plugin.deepspeed_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
        else:
            fsdp = raw["fsdp_config"]
            plugin = FullyShardedDataParallelPlugin()
            assert plugin.fsdp_version == fsdp["fsdp_version"]
            assert plugin.state_dict_type.name == fsdp["fsdp_state_dict_type"]
            assert plugin.auto_wrap_policy is not None
            wrap = fsdp.get("fsdp_transformer_layer_cls_to_wrap")
            assert plugin.transformer_cls_names_to_wrap == (wrap.split(",") if wrap else None)
