"""The `moon-rl` command line. Each command lives in its own module of this package and exposes
`register(app)`; this file only assembles them. Commands import their heavy dependencies (torch,
transformers, trl) inside the command body so that `moon-rl --help` stays fast.

Help width: on a terminal, its full width; piped or redirected (`moon-rl sft --help | less`, into a file),
80 columns whatever COLUMNS says, so the lines wrap cleanly.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

import typer

PIPED_HELP_WIDTH = 80


def help_width() -> int:
    """The terminal's width when stdout is one, else `PIPED_HELP_WIDTH`."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((PIPED_HELP_WIDTH, 24)).columns
    return PIPED_HELP_WIDTH


app = typer.Typer(
    name="moon-rl",
    help="Train reasoning-aware multimodal product embeddings (MOON3.0) with SFT + joint contrastive GRPO.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's own formatter (without rich) caps help at 80 columns unless told the width.
    context_settings={"max_content_width": help_width(), "terminal_width": help_width()},
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
    # typer's rich help reads TERMINAL_WIDTH when it first renders; rich alone would take COLUMNS even when piped.
    os.environ.setdefault("TERMINAL_WIDTH", str(help_width()))
    app()
