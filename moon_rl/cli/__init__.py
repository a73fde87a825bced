"""The `moon-rl` command line. Each command lives in its own module of this package and exposes
`register(app)`; this file only assembles them. Commands import their heavy dependencies (torch,
transformers, trl) inside the command body so that `moon-rl --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="moon-rl",
    help="Train reasoning-aware multimodal product embeddings (MOON3.0) with SFT + joint contrastive GRPO.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules under moon_rl.cli that define `register(app)`. Only commands that work are listed.
COMMAND_MODULES = [
    "tiny",
    "data",
    "eval",
    "export",
    "rewards",
    "sft",
    "grpo",
    "demo",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"moon_rl.cli.{_name}").register(app)


def main() -> None:
    app()
