"""`moon-rl make-tiny-model`: build a tiny random Qwen model + tokenizer/processor into a folder.

    moon-rl make-tiny-model --arch qwen2_5_vl --out runs/tiny-vl
    moon-rl make-tiny-model --arch qwen3 --out runs/small-text --size small --corpus titles.txt

The folder loads offline with `from_pretrained` and is what the tests, the demo and the benchmarks
train. See `moon_rl/models/tiny/` for sizes, token ids and the chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from moon_rl.cli.common import run_guarded
from moon_rl.errors import MoonError
from moon_rl.models.tiny.configs import ARCHS  # light: torch/transformers are imported in the build only


def make_tiny_model_command(
    arch: str = typer.Option(..., "--arch", help=f"Architecture: one of {', '.join(ARCHS)}."),
    out: Path = typer.Option(..., "--out", help="Folder to write the model to (must be empty unless --force)."),
    size: str = typer.Option(
        "tiny", "--size", help="tiny (~0.2-0.3M params, for tests) or small (~3-4M params, for the demo)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the random weights (same seed -> same weights)."),
    corpus: Path | None = typer.Option(
        None,
        "--corpus",
        help="Text file, one text per line (e.g. your catalog titles), added to the tokenizer's training corpus.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Build into a non-empty --out (deletes its *.safetensors, *.json, *.jinja first)."
    ),
) -> None:
    """Write a randomly initialised tiny Qwen model with its tokenizer (and processor for VL archs)."""
    run_guarded(_build, arch, out, size, seed, corpus, force)


def _build(arch: str, out: Path, size: str, seed: int, corpus: Path | None, force: bool) -> None:
    from moon_rl.models.tiny import INFO_FILE, make_tiny_model

    extra = _read_corpus(corpus) if corpus is not None else None
    path = make_tiny_model(arch, out, size=size, seed=seed, extra_corpus=extra, force=force)
    info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    params = info["parameters"]
    print(
        f"wrote {info['arch']} ({info['size']}, seed {info['seed']}) to {path}: "
        f"{params['total']:,} parameters ({params['vision']:,} vision), vocabulary {info['vocab_size']}"
    )


def _read_corpus(path: Path) -> list[str]:
    if not path.is_file():
        raise MoonError(f"--corpus {path}: no such file; give a text file with one text per line")
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise MoonError(f"--corpus {path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None


def register(app: typer.Typer) -> None:
    app.command("make-tiny-model")(make_tiny_model_command)
