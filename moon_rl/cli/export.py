"""`moon-rl export-adapter`: package a run or checkpoint (adapter, head, processor, config, model card).

    moon-rl export-adapter runs/grpo --out exports/grpo-v1            # adapter + head, verified
    moon-rl export-adapter runs/grpo/checkpoint-200 --out exports/ck200 --merge --force

The work is in `moon_rl.export.adapter` (atomic write, verification by reloading); this module only parses options.
"""

from __future__ import annotations

from pathlib import Path

import typer

from moon_rl.cli.common import run_guarded


def _run(source: Path, out: Path, merge: bool, force: bool, base_model: str | None, verify_data: Path | None, n_verify: int, device: str, st: bool = False) -> None:
    from moon_rl.export.adapter import export_adapter

    result = export_adapter(
        source, out, merge=merge, sentence_transformers=st, force=force, base_model=base_model, verify_data=verify_data, n_verify=n_verify, device=device
    )
    typer.echo(f"exported {result.source} -> {result.out} (base model {result.base_model})")
    typer.echo(f"verified: max abs difference of embeddings on {result.n_records} records after reload: {result.max_abs_diff:.3g}")
    if result.merged is not None:
        typer.echo(f"merged model: {result.merged} (max abs difference, forward only: {result.merged_max_abs_diff:.3g})")
    if result.sentence_transformers is not None:
        typer.echo(f"sentence-transformers: {result.sentence_transformers} (1 - min cosine vs moon_rl encode: {result.st_cosine_gap:.3g})")


def export_command(
    source: Path = typer.Argument(..., help="A run folder, a checkpoint-N folder, or an export to re-export."),
    out: Path = typer.Option(..., "--out", help="Folder to write the export to (must be empty or absent unless --force)."),
    merge: bool = typer.Option(False, "--merge", help="Also write OUT/merged/: LoRA merged into the base, loadable by plain transformers and vLLM."),
    sentence_transformers: bool = typer.Option(
        False, "--sentence-transformers", help="Also write OUT/st/ (implies --merge): the embedder as a sentence-transformers folder, "
        "`SentenceTransformer(OUT/st)` with no custom code; needs a run trained with pooling=input."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out (only after the new export is complete and verified)."),
    base_model: str = typer.Option(None, "--base-model", help="Base model path/id when the one recorded in the adapter does not exist here."),
    verify_data: Path = typer.Option(None, "--verify-data", help="Catalog whose first products are used for the reload check (default: built-in queries)."),
    verify_records: int = typer.Option(4, "--verify-records", help="How many records the reload check embeds."),
    device: str = typer.Option("cpu", "--device", help="torch device used to load and verify."),
) -> None:
    """Export a trained adapter + embedding head as a self-contained, verified folder (optionally merged)."""
    run_guarded(_run, source, out, merge, force, base_model, verify_data, verify_records, device, sentence_transformers)


def register(app: typer.Typer) -> None:
    app.command("export-adapter")(export_command)
