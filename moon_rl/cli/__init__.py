"""The `moon-rl` command line. Each command lives in its own module of this package and exposes
`register(app)`; this file only assembles them. Commands import their heavy dependencies (torch,
transformers, trl) inside the command body so that `moon-rl --help` stays fast.

Help: on a terminal, typer's rich panels at the terminal's full width; piped or redirected
(`moon-rl sft --help | less`, into a file), plain click text wrapped at 80 columns whatever COLUMNS says
(rich would cut long words with an ellipsis and draw boxes into the file).
"""

from __future__ import annotations

import importlib
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
    "models",
    "data",
    "eval",
    "export",
    "rewards",
    "sft",
    "grpo",
    "demo",
    "index",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"moon_rl.cli.{_name}").register(app)


def plain_help(typer_app: typer.Typer) -> None:
    """Switch `typer_app` and its sub-apps to click's plain formatter (typer: rich_markup_mode=None)."""
    typer_app.rich_markup_mode = None
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            plain_help(group.typer_instance)


def main() -> None:
    if not sys.stdout.isatty():
        plain_help(app)
    app()
