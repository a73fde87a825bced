"""`moon-rl demo`: the recipe on a real model and real offers (moon_rl/demo.py); `--tiny`: the synthetic VL pipeline
(moon_rl/demo_tiny.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from moon_rl.cli.common import guarded


def demo(
    out: Path = typer.Option(Path("moon-rl-demo"), "--out", help="Folder for everything the demo writes (catalog, runs, eval report, export)."),
    quick: bool = typer.Option(False, "--quick", help="The short version: fewer training steps, a seeded sample of the corpus (under 4 minutes on 2 cores)."),
    tiny: bool = typer.Option(False, "--tiny", help="The synthetic pipeline instead: generated catalog with images, tiny random VL model, no download."),
    seed: int = typer.Option(0, "--seed", help="Seed for training and for every sample."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it is not empty."),
    setup_only: bool = typer.Option(False, "--setup-only", help="Only install and convert the base model into the cache (MOON_RL_CACHE), then stop: the Makefile's install step."),
) -> None:
    """SmolLM2-135M-Instruct on abt-buy (shipped): SFT -> joint contrastive GRPO -> eval vs base, TF-IDF, BM25 -> export -> a query."""
    if tiny:
        return _tiny(out, quick, seed, force)
    from moon_rl.demo import format_query, obtain_base_model, run_demo

    if setup_only:
        from moon_rl.models.gguf import cache_root

        typer.echo(f"base model ready: {guarded(obtain_base_model)(cache_root())}")
        return

    summary = guarded(run_demo)(out, quick=quick, seed=seed, force=force)
    typer.echo("\n== query against the exported model ==\n")
    typer.echo(format_query(summary["query"]))
    typer.echo("\n== stages ==\n")
    typer.echo(summary["stage_table"])
    sampled = "" if summary["plan"] == "full" else f", {sampling_line(summary)}"
    typer.echo(f"\n== results: abt-buy held-out queries against the Buy corpus{sampled} ==\n")
    typer.echo(summary["table"])
    typer.echo("")
    for name, path in summary["eval_files"].items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"exported model: {summary['export']}")


def sampling_line(summary: dict) -> str:
    samples = ((summary.get("sampling") or {}).get("samples")) or {}
    return "; ".join(f"{what}: {s['n']} of {s['of']} ({s['how']})" for what, s in samples.items() if "memory" not in what)


def _tiny(out: Path, quick: bool, seed: int, force: bool) -> None:
    from moon_rl.demo_tiny import run_tiny_demo

    summary = guarded(run_tiny_demo)(out, quick=quick, seed=seed, force=force)
    typer.echo("\n== moon-rl demo --tiny results (test split of the synthetic catalog) ==\n")
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
