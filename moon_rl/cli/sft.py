"""`moon-rl sft`: supervised cold start (reasoning format + embedding head), LoRA by default.

    moon-rl sft --model runs/tiny-vl --data data/sft --out runs/sft --config configs/sft_tiny.yaml
    moon-rl sft --model Qwen/Qwen2.5-VL-3B-Instruct --data data/sft --out runs/sft-3b \
        --config configs/sft_qwen2_5_vl_3b.yaml --set contrastive_weight=0.2
    moon-rl sft ... --resume latest

Only parses options and calls `moon_rl.trainers.sft.config.build_sft_configs` and `moon_rl.trainers.sft.run.run_sft`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from moon_rl.cli.common import OVERWRITE_OUTPUT_HELP, run_guarded


def _sft(
    model: str | None,
    data: Path,
    out: Path | None,
    config: Path | None,
    sets: list[str],
    lora: bool | None,
    load_in_4bit: bool | None,
    max_steps: int | None,
    epochs: float | None,
    learning_rate: float | None,
    batch_size: int | None,
    seed: int | None,
    resume: str | None,
    trust_remote_code: bool = False,
    overwrite_output: bool = False,
) -> None:
    from moon_rl.trainers.checkpoints import check_resume_files, resolve_resume
    from moon_rl.cli.common import check_training_output
    from moon_rl.config_io import parse_set_overrides
    from moon_rl.trainers.interrupt import INTERRUPTED_EXIT, interrupted_message
    from moon_rl.trainers.sft.config import build_sft_configs
    from moon_rl.trainers.sft.run import run_sft

    cfg, model_args = build_sft_configs(
        config,
        parse_set_overrides(sets),
        model=model,
        output_dir=str(out) if out is not None else None,
        lora=lora,
        load_in_4bit=load_in_4bit,
        max_steps=max_steps,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        seed=seed,
        trust_remote_code=True if trust_remote_code else None,
    )
    check_training_output(cfg.output_dir, data, model_args, overwrite_output)
    resume = resolve_resume(cfg.output_dir, resume)
    check_resume_files(resume)  # a corrupt optimizer.pt / adapter: one line naming it, before anything loads
    if resume is not None:
        typer.echo(f"resuming from {resume}", err=True)
    summary = run_sft(cfg, model_args, data, resume=resume)
    typer.echo(json.dumps(summary, indent=2, default=str))
    if summary["interrupted"]:
        typer.echo(interrupted_message(summary["global_step"]), err=True)
        raise typer.Exit(INTERRUPTED_EXIT)


def register(app: typer.Typer) -> None:
    @app.command("sft")
    def sft(
        model: str = typer.Option(None, "--model", help="Base model (hub id or local folder) or a moon-rl output to continue from. Required (here or as model: in --config)."),
        data: Path = typer.Option(..., "--data", help="Prepared SFT dataset (`moon-rl data prepare --task sft`) or a catalog folder."),
        out: Path = typer.Option(None, "--out", help="Output folder: checkpoints, final adapter + embedding head, logs. Required (here or as output_dir: in --config)."),
        config: Path = typer.Option(None, "--config", help="YAML file of MoonSFTConfig / model fields (see configs/sft_*.yaml)."),
        sets: list[str] = typer.Option([], "--set", help="Any config field as KEY=VALUE (repeatable), e.g. --set contrastive_weight=0.2."),
        lora: bool = typer.Option(None, "--lora/--no-lora", help="Train LoRA adapters (default) or the full model."),
        load_in_4bit: bool = typer.Option(None, "--load-in-4bit", help="QLoRA: load the base model in 4 bit (needs CUDA + bitsandbytes)."),
        max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps (overrides --epochs)."),
        epochs: float = typer.Option(None, "--epochs", help="Number of passes over the data."),
        learning_rate: float = typer.Option(None, "--learning-rate", help="Peak learning rate."),
        batch_size: int = typer.Option(None, "--batch-size", help="Rows per device per step (positives are kept in the same batch)."),
        seed: int = typer.Option(None, "--seed", help="Random seed (LoRA init, head init, batch order)."),
        resume: str = typer.Option(None, "--resume", help="'latest' (newest complete checkpoint in --out) or a checkpoint folder."),
        trust_remote_code: bool = typer.Option(
            False, "--trust-remote-code", help="Allow the model folder / hub repo to run its own Python code (off by default)."
        ),
        overwrite_output: bool = typer.Option(False, "--overwrite-output", help=OVERWRITE_OUTPUT_HELP),
    ) -> None:
        """Supervised cold start: reasoning-trace SFT + contrastive embedding head (MOON3.0 step one)."""
        run_guarded(
            _sft, model, data, out, config, sets, lora, load_in_4bit, max_steps, epochs, learning_rate, batch_size, seed, resume,
            trust_remote_code, overwrite_output,
        )
