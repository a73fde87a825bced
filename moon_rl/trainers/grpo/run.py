"""Run joint GRPO + InfoNCE end to end: config -> data -> rewards -> model -> trainer -> train -> save.

    moon-rl grpo --model runs/sft --data data/grpo --out runs/grpo --config configs/grpo_tiny.yaml
    moon-rl grpo ... --reward format --reward attribute_f1=2 --reward my_rewards.py:brand=0.5
    moon-rl grpo ... --num-processes 2          # data parallel through `accelerate launch`
    moon-rl grpo ... --resume latest            # continue from the newest complete checkpoint in --out

`--model` is a base model or a moon-rl output (SFT or GRPO): then its adapter is trained further and its
embedding head and modules are loaded. `--data` is a prepared dataset (`moon-rl data prepare --task grpo`:
prompt + the ground-truth columns the rewards read + id/group_id) or a catalog folder, prepared on the fly
(train split). Everything checkable before the model loads is checked first: the vLLM extra, QLoRA, the
reward specs, the dataset's columns and ids.

Output (`--out`): checkpoints `checkpoint-N/` (adapter + moon_extras.* + optimizer state, resumable), and at
the end the final adapter, processor files, `moon_extras.*`, `trainer_state.json` (log history: TRL's
GRPO metrics plus contrastive_loss, retrieval_accuracy, fusion gates, residual gate norms) and `moon_rl.json`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError
from moon_rl.prepared_data import check_images, check_rows, load_prepared
from moon_rl.trainers.grpo.config import MoonGRPOConfig
from moon_rl.models.loading import ModelArgs



# ---- data -------------------------------------------------------------------------------------------


def load_grpo_data(path: str | Path, with_images: bool = True):
    """A prepared GRPO dataset folder, or a catalog folder prepared on the fly (train split)."""
    return load_prepared(path, "grpo", with_images)


def validate_grpo_dataset(dataset, source: str, needs_groups: bool, model_takes_images: bool) -> None:
    """Fail on the first unusable row, naming it: the light columns, then every image decoded (`check_images`)."""
    if "completion" in dataset.column_names:
        raise MoonError(f"{source}: dataset has a 'completion' column (SFT data?); GRPO generates completions, use --task grpo data")
    check_rows(dataset, source, "grpo", ("prompt",), needs_groups, model_takes_images)
    if "images" in dataset.column_names:
        check_images(dataset, source)


# ---- rewards ----------------------------------------------------------------------------------------


def build_rewards(config: MoonGRPOConfig) -> list:
    """Resolve `config.reward_specs` and wrap each in the contract guard (their weights are already in
    `config.reward_weights`, derived when the config was built)."""
    from reward_fns.guard import GuardedReward
    from reward_fns.registry import resolve_rewards

    funcs, _ = resolve_rewards(config.reward_specs)
    return [GuardedReward(fn, on_error=config.reward_errors) for fn in funcs]


# ---- model + trainer --------------------------------------------------------------------------------


def build_trainer(config: MoonGRPOConfig, model_args: ModelArgs, dataset, reward_funcs: list, callbacks: list | None = None):
    """Load the policy (base or moon-rl output) and wrap it in a `MoonGRPOTrainer`."""
    from moon_rl.trainers.common import load_and_wrap
    from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer

    return load_and_wrap(MoonGRPOTrainer, config, model_args, dataset, callbacks, reward_funcs=reward_funcs)


# ---- train + save -----------------------------------------------------------------------------------



def run_grpo(config: MoonGRPOConfig, model_args: ModelArgs, data: str | Path, resume: str | bool | None = None) -> dict[str, Any]:
    """Validate, train, save. Returns a summary (output folder, steps, first/last logged metrics)."""
    from moon_rl.trainers.checkpoints import resolve_resume
    from moon_rl.trainers.interrupt import GracefulInterrupt
    from moon_rl.trainers.common import train_and_save
    from moon_rl.models.loading import model_is_vision_language

    reward_funcs = build_rewards(config)
    resume_from = resolve_resume(config.output_dir, resume)
    takes_images = model_is_vision_language(model_args)
    dataset = load_grpo_data(data, with_images=takes_images)
    validate_grpo_dataset(dataset, str(data), needs_groups=config.contrastive_weight > 0, model_takes_images=takes_images)
    if config.contrastive_weight > 0:
        from moon_rl.trainers.sampling import batch_clusters

        batch_clusters(dataset, config.hard_negatives_by)  # a wrong column fails before the model loads

    interrupt = GracefulInterrupt()
    trainer = build_trainer(config, model_args, dataset, reward_funcs, callbacks=[interrupt])
    return train_and_save(trainer, interrupt, "grpo", model_args, resume_from, log_key="reward")


# ---- multi-process ----------------------------------------------------------------------------------


def strip_option(argv: list[str], name: str, takes_value: bool = True) -> list[str]:
    """`argv` without `name VALUE` / `name=VALUE` (so a relaunched command does not relaunch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = takes_value
        elif not arg.startswith(f"{name}="):
            out.append(arg)
    return out


def launch_multiprocess(argv: list[str], num_processes: int, accelerate_config: str | None = None) -> int:
    """Re-run this `moon-rl` command under `accelerate launch` with `num_processes` data-parallel processes.

    Without `--accelerate-config`, accelerate's multi-process launcher is used (torch.distributed, NCCL on
    GPUs, gloo on CPU: MoonGRPOConfig switches on use_cpu when no CUDA device is visible). With one
    (configs/accelerate/*.yaml: multi-GPU, DeepSpeed ZeRO-2/3, FSDP) its settings apply.
    """
    if num_processes < 1:
        raise MoonError(f"--num-processes must be >= 1, got {num_processes}")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if accelerate_config is not None:
        if not Path(accelerate_config).is_file():
            raise MoonError(f"--accelerate-config {accelerate_config}: no such file (see configs/accelerate/)")
        launch += ["--config_file", str(accelerate_config)]
    else:
        launch += ["--multi_gpu"]
    rest = strip_option(strip_option(argv, "--num-processes"), "--accelerate-config")
    from moon_rl.trainers.launch import run_child

    return run_child([*launch, "-m", "moon_rl", *rest])  # Ctrl-C / SIGTERM reach the workers, which save and stop
