"""`moon-rl embed` (a catalog into vectors on disk) and `moon-rl search` (top-k over them). The work is in
moon_rl/index/."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from moon_rl.cli.common import guarded


def embed(
    model: str = typer.Option(..., "--model", help="A moon-rl run, checkpoint or export (or a base model folder)."),
    data: Path = typer.Option(..., "--data", help="A catalog folder (products.jsonl) or a text file, one record a line."),
    out: Path = typer.Option(..., "--out", help="Folder for the index (Parquet shards + moon_rl_index.json); the same command resumes into it."),
    split: str = typer.Option(None, "--split", help="Only the records of splits/SPLIT.txt of the catalog (e.g. corpus)."),
    reasoning: bool = typer.Option(True, "--reasoning/--no-reasoning", help="A reasoning embedding: the vector read after the model's own reasoning (default), or its no-reasoning vector."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Cap on the reasoning written per record (default: the run's)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Records a forward."),
    shard_size: int = typer.Option(1024, "--shard-size", help="Records a Parquet shard (the unit a resumed run skips)."),
    on_error: str = typer.Option("stop", "--on-error", help="A record that cannot be embedded (no text): stop, or skip it (listed in OUT/skipped.jsonl)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    base_model: str = typer.Option(None, "--base-model", help="Override the base model an adapter records."),
    ray: bool = typer.Option(False, "--ray", help="Run as a Ray Data pipeline (an actor pool holding the model); needs the 'ray' extra."),
    ray_address: str = typer.Option(None, "--ray-address", help="A running Ray cluster (e.g. auto, ray://host:10001); default: a local instance."),
    ray_cpus_per_actor: int = typer.Option(None, "--ray-cpus-per-actor", help="CPUs (torch threads) per actor; default: all of them (one actor), 1 with --device cuda."),
) -> None:
    """Embed every record into resumable Parquet shards (id, vector, text, reasoning) plus a manifest."""
    from moon_rl.index.embed import EmbedConfig, run_embed

    def run():
        cfg = EmbedConfig(model=model, data=str(data), out=str(out), split=split, reasoning=reasoning, max_new_tokens=max_new_tokens,
                          batch_size=batch_size, shard_size=shard_size, on_error=on_error, device=device, base_model=base_model)
        if ray or ray_address:
            from moon_rl.index.ray_embed import run_embed_ray

            return run_embed_ray(cfg, address=ray_address, cpus_per_actor=ray_cpus_per_actor)
        return run_embed(cfg)

    manifest = guarded(run)()
    typer.echo(f"{manifest['count']} vectors of dimension {manifest['dimension']} ({manifest['vector']}) in {out}")


def search(
    index: Path = typer.Option(..., "--index", help="A folder `moon-rl embed` wrote."),
    query: str = typer.Option(None, "--query", help="One search text."),
    queries: Path = typer.Option(None, "--queries", help="A text file, one query a line."),
    id_: str = typer.Option(None, "--id", help="An id in the index: records like it (itself left out)."),
    k: int = typer.Option(10, "-k", "--top-k", help="Hits per query."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout (one object a query with its hits) instead of tables."),
    device: str = typer.Option("cpu", "--device", help="Where the queries are embedded."),
    ann: bool = typer.Option(False, "--ann", help="Search through the index's approximate index (built with --build-ann) instead of exactly."),
    build_ann: str = typer.Option(None, "--build-ann", help="Build an approximate index (ivf or hnsw, faiss) and report its recall@10 against exact search; then search if a query is given."),
) -> None:
    """Exact top-k over an index by cosine similarity; text queries are embedded by the index's own model."""
    from moon_rl.index.search import SearchConfig, format_hits, run_search

    if build_ann:
        from moon_rl.index.ann import AnnParams, build_for_index

        report = guarded(build_for_index)(index, AnnParams(kind=build_ann))
        typer.echo(f"approximate index ({build_ann}) of {report['count']} vectors: recall@10 {report['recall@10']:.3f} against exact "
                   f"search, query time {report['time_ratio']:.2f}x exact's ({report['queries']} of its own vectors as queries); "
                   f"built in {report['build_s']:.1f}s -> {index / 'ann.faiss'}")
        if query is None and queries is None and id_ is None:
            return

    def run():
        cfg = SearchConfig(index=str(index), query=query, queries=str(queries) if queries else None, id=id_, k=k, device=device,
                           progress=not as_json, ann=ann)
        return run_search(cfg)

    results = guarded(run)()
    typer.echo(json.dumps(results, ensure_ascii=False, indent=1) if as_json else format_hits(results))


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
    app.command("search")(search)
