"""`moon-rl grpo`: joint GRPO + contrastive training (MOON3.0 step two); `moon-rl vllm-serve`: the vLLM
server that `moon-rl grpo --use-vllm --vllm-mode server` generates with.

    moon-rl grpo --model runs/sft-tiny --data data/grpo --out runs/grpo-tiny --config configs/grpo_tiny.yaml
    moon-rl grpo ... --reward format --reward attribute_f1=2 --reward tests/reward_fns/custom_rewards.py:brand
    moon-rl grpo ... --num-processes 2 [--accelerate-config configs/accelerate/deepspeed_zero2.yaml]
    moon-rl vllm-serve --model Qwen/Qwen2.5-VL-3B-Instruct          # then: moon-rl grpo ... --use-vllm --vllm-mode server

Only parses options and calls `moon_rl.trainers.grpo.config.build_grpo_configs` and `moon_rl.trainers.grpo.run.run_grpo`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from moon_rl.cli.common import OVERWRITE_OUTPUT_HELP, check_training_output, run_guarded
from moon_rl.errors import MoonError


def _grpo(opts: dict) -> None:
    from moon_rl.trainers.checkpoints import check_resume_files, resolve_resume
    from moon_rl.config_io import parse_set_overrides
    from moon_rl.trainers.grpo.config import build_grpo_configs
    from moon_rl.trainers.interrupt import INTERRUPTED_EXIT, interrupted_message
    from moon_rl.trainers.grpo.run import launch_multiprocess, run_grpo

    # Built (and so validated: the vLLM extra, QLoRA, every field) before anything else, relaunch included.
    cfg, model_args = build_grpo_configs(
        opts["config"],
        parse_set_overrides(opts["sets"]),
        model=opts["model"],
        output_dir=str(opts["out"]) if opts["out"] is not None else None,
        lora=opts["lora"],
        load_in_4bit=opts["load_in_4bit"],
        max_steps=opts["max_steps"],
        learning_rate=opts["learning_rate"],
        per_device_train_batch_size=opts["batch_size"],
        num_generations=opts["num_generations"],
        seed=opts["seed"],
        rewards=opts["rewards"] or None,
        reward_errors=opts["reward_errors"],
        use_vllm=opts["use_vllm"] or None,
        vllm_mode=opts["vllm_mode"],
        trust_remote_code=True if opts["trust_remote_code"] else None,
    )
    num_processes = opts["num_processes"]
    if num_processes and num_processes > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        if "grpo" not in sys.argv:
            raise MoonError("--num-processes relaunches the command line it was given; run it as `moon-rl grpo ...`")
        code = launch_multiprocess(sys.argv[sys.argv.index("grpo") :], num_processes, opts["accelerate_config"])
        if code:
            raise typer.Exit(code)
        return
    check_training_output(cfg.output_dir, opts["data"], model_args, opts["overwrite_output"])
    main_process = int(os.environ.get("RANK", "0")) == 0
    resume = resolve_resume(cfg.output_dir, opts["resume"])
    check_resume_files(resume)  # a corrupt optimizer.pt / adapter: one line naming it, before anything loads
    if resume is not None and main_process:
        typer.echo(f"resuming from {resume}", err=True)
    summary = run_grpo(cfg, model_args, opts["data"], resume=resume)
    if main_process:
        typer.echo(json.dumps(summary, indent=2, default=str))
        if summary["interrupted"]:
            typer.echo(interrupted_message(summary["global_step"]), err=True)
    if summary["interrupted"]:
        raise typer.Exit(INTERRUPTED_EXIT)


def _vllm_serve(model: str, host: str, port: int, tensor_parallel_size: int, gpu_memory_utilization: float,
                max_model_len: int | None, dtype: str, extra: list[str]) -> None:
    from moon_rl.models.loading import resolve_source
    from moon_rl.trainers.vllm_support import require_vllm, serve

    require_vllm("moon-rl vllm-serve")
    # A moon-rl output is an adapter: serve its base; the trainer pushes the merged weights at every step.
    serve(resolve_source(model).path, host, port, tensor_parallel_size, gpu_memory_utilization, max_model_len, dtype, extra)


def register(app: typer.Typer) -> None:
    @app.command("grpo")
    def grpo(
        model: str = typer.Option(None, "--model", help="Base model (hub id or local folder) or a moon-rl output (SFT/GRPO) to continue from. Required (here or as model: in --config)."),
        data: Path = typer.Option(..., "--data", help="Prepared GRPO dataset (`moon-rl data prepare --task grpo`) or a catalog folder."),
        out: Path = typer.Option(None, "--out", help="Output folder: checkpoints, final adapter + embedding head + modules, logs. Required (here or as output_dir: in --config)."),
        config: Path = typer.Option(None, "--config", help="YAML file of MoonGRPOConfig / model fields (see configs/grpo_*.yaml)."),
        sets: list[str] = typer.Option([], "--set", help="Any config field as KEY=VALUE (repeatable), e.g. --set beta=0.04."),
        rewards: list[str] = typer.Option(
            [], "--reward", help="Reward SPEC[=WEIGHT] (repeatable): a built-in name (`moon-rl rewards list`), FILE.py:FUNC or "
            "package.module:FUNC. Default: format + attribute_f1."
        ),
        reward_errors: str = typer.Option(None, "--reward-errors", help="A reward that raises or breaks the contract: 'raise' (default) or 'skip' (score None, count it)."),
        lora: bool = typer.Option(None, "--lora/--no-lora", help="Train LoRA adapters (default) or the full model."),
        load_in_4bit: bool = typer.Option(None, "--load-in-4bit", help="QLoRA: load the base model in 4 bit (needs CUDA + bitsandbytes)."),
        max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
        learning_rate: float = typer.Option(None, "--learning-rate", help="Peak learning rate."),
        batch_size: int = typer.Option(None, "--batch-size", help="Rollouts per device per step (a multiple of the generations per prompt)."),
        num_generations: int = typer.Option(None, "--num-generations", help="Rollouts per prompt (GRPO's group size G, >= 2)."),
        seed: int = typer.Option(None, "--seed", help="Random seed (LoRA init, head init, prompt order, sampling)."),
        resume: str = typer.Option(None, "--resume", help="'latest' (newest complete checkpoint in --out) or a checkpoint folder."),
        use_vllm: bool = typer.Option(False, "--use-vllm", help="Generate rollouts with vLLM (GPU; needs `pip install 'moon-rl[vllm]'`)."),
        vllm_mode: str = typer.Option(None, "--vllm-mode", help="'colocate' (vLLM in the training process) or 'server' (`moon-rl vllm-serve`)."),
        num_processes: int = typer.Option(None, "--num-processes", help="Data-parallel processes; > 1 relaunches through `accelerate launch`."),
        accelerate_config: str = typer.Option(None, "--accelerate-config", help="accelerate config for --num-processes (configs/accelerate/*.yaml)."),
        trust_remote_code: bool = typer.Option(
            False, "--trust-remote-code", help="Allow the model folder / hub repo to run its own Python code (off by default)."
        ),
        overwrite_output: bool = typer.Option(False, "--overwrite-output", help=OVERWRITE_OUTPUT_HELP),
    ) -> None:
        """Joint GRPO + contrastive training of the reasoning policy and its embedding head (MOON3.0 step two)."""
        opts = dict(
            model=model, data=data, out=out, config=config, sets=sets, rewards=rewards, reward_errors=reward_errors, lora=lora,
            load_in_4bit=load_in_4bit, max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
            num_generations=num_generations, seed=seed, resume=resume, use_vllm=use_vllm, vllm_mode=vllm_mode,
            num_processes=num_processes, accelerate_config=accelerate_config, trust_remote_code=trust_remote_code,
            overwrite_output=overwrite_output,
        )
        run_guarded(_grpo, opts)

    @app.command("vllm-serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def vllm_serve(
        ctx: typer.Context,
        model: str = typer.Option(..., "--model", help="Model to serve: hub id, local folder, or a moon-rl output (its base model is served)."),
        host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),
        port: int = typer.Option(8000, "--port", help="Port (the trainer's vllm_server_port)."),
        tensor_parallel_size: int = typer.Option(1, "--tensor-parallel-size", help="GPUs per model replica."),
        gpu_memory_utilization: float = typer.Option(0.9, "--gpu-memory-utilization", help="Share of GPU memory vLLM may take."),
        max_model_len: int = typer.Option(None, "--max-model-len", help="Longest prompt + completion, in tokens."),
        dtype: str = typer.Option("auto", "--dtype", help="Weight dtype: auto, bfloat16, float16."),
    ) -> None:
        """Start the vLLM generation server for `moon-rl grpo --use-vllm --vllm-mode server` (TRL's `trl vllm-serve`).
        Unknown options are passed on to `vllm serve`."""
        run_guarded(_vllm_serve, model, host, port, tensor_parallel_size, gpu_memory_utilization, max_model_len, dtype, list(ctx.args))
