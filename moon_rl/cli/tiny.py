"""`moon-rl make-tiny-model`: placeholder module, replaced by the tiny-models work."""
import typer


def register(app: typer.Typer) -> None:
    pass
