"""`moon-rl demo`: the whole pipeline on the embedded default (see moon_rl/demo.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from moon_rl.cli.common import guarded


def demo(
    out: Path = typer.Option(Path("moon-rl-demo"), "--out", help="Folder for everything the demo writes (catalog, models, runs, report)."),
    quick: bool = typer.Option(False, "--quick", help="The three-minute version: fewer products, tiny model, fewer steps."),
    seed: int = typer.Option(0, "--seed", help="Seed for the catalog, the model and training."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it is not empty."),
) -> None:
    """Run synthetic catalog -> tiny VL model -> SFT -> joint contrastive GRPO -> eval vs base -> export, on CPU."""
    from moon_rl.demo import run_demo

    summary = guarded(run_demo)(out, quick=quick, seed=seed, force=force)
    typer.echo("\n== moon-rl demo results (test split of the synthetic catalog) ==\n")
    typer.echo(summary["table"])
    typer.echo("")
    for name, path in summary["eval_files"].items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"exported model: {summary['export']}")
    timings = summary["timings_s"]
    width = max((len(name) for name in timings), default=5)
    typer.echo("\n" + "\n".join([f"{'stage':<{width}}  seconds", f"{'-' * width}  -------",
                                  *(f"{name:<{width}}  {seconds:7.1f}" for name, seconds in timings.items())]))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
