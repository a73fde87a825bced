"""`moon-rl eval`: retrieval, classification and attribute metrics of a model (and baselines) on a catalog.

    moon-rl eval --model runs/grpo --data data/synth --out runs/grpo/eval \
        --baseline runs/tiny-vl --baseline runs/sft --baseline bm25 --max-products 200 --max-new-tokens 64

Writes OUT/metrics.json, OUT/report.md (models side by side) and PNG plots. `--config eval.yaml` and
`--set key=value` set any field of `moon_rl.eval.run.EvalConfig`; explicit flags win. The work is in
`moon_rl.eval` (tasks, metrics, report); this module only parses options.
"""

from __future__ import annotations

from pathlib import Path

import typer

from moon_rl.cli.common import OVERWRITE_OUTPUT_HELP, run_guarded


def _run(config: Path | None, overrides: list[str], fixed: dict) -> None:
    from moon_rl.config_io import build_config, parse_set_overrides, read_yaml
    from moon_rl.eval.run import EvalConfig, run_eval

    layers = []
    if config is not None:
        layers.append((str(config), read_yaml(config)))
    layers.append(("--set", parse_set_overrides(overrides)))
    cfg = build_config(EvalConfig, *layers, **{k: v for k, v in fixed.items() if v is not None})
    metrics = run_eval(cfg)
    typer.echo(f"wrote {metrics['files']['report']} and {metrics['files']['metrics']}")


def eval_command(
    model: str = typer.Option(None, "--model", help="Run folder, checkpoint-N, export, or base model folder to evaluate. Required (here or as model: in --config)."),
    data: Path = typer.Option(None, "--data", help="Catalog folder (products.jsonl + splits/) in the moon-rl product schema; with --tasks pairwise a pairs JSONL file. Required."),
    out: Path = typer.Option(None, "--out", help="Folder for metrics.json, report.md and the plots. Required."),
    tasks: str = typer.Option(None, "--tasks", help="Comma-separated subset of retrieval,classification,attributes (default: all); or pairwise (A-vs-B accuracy on a pairs file)."),
    baseline: list[str] = typer.Option(None, "--baseline", help="Another model to evaluate side by side (repeatable), e.g. the base model; or a retrieval baseline on the same queries: bm25, tfidf (words), tfidf_char (char 2-4-grams), or a sentence-transformers folder (modules.json). Lexical ones need pip install 'moon-rl[bench]'."),
    base_model: str = typer.Option(None, "--base-model", help="Base model for adapters whose recorded base path does not exist here."),
    batch_size: int = typer.Option(None, "--batch-size", help="Records per forward/generation batch (default 8)."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Reasoning tokens generated per record (default: the run's max_completion_length, else 128)."),
    max_products: int = typer.Option(None, "--max-products", help="Cap on test products (corpus) and train products (k-NN), random whole groups (default 500; 0: no cap)."),
    max_queries: int = typer.Option(None, "--max-queries", help="Cap on queries per retrieval setting, a random sample (default 200; 0: no cap)."),
    max_attribute_records: int = typer.Option(None, "--max-attribute-records", help="Cap on products scored for attributes, a random sample (default 100; 0: no cap)."),
    sample_seed: int = typer.Option(None, "--sample-seed", help="Seed of every capped sample (default 0); the report states each sample."),
    knn_k: int = typer.Option(None, "--knn-k", help="Neighbours for k-NN classification (default 5)."),
    reasoning: bool = typer.Option(None, "--reasoning/--no-reasoning", help="Generate reasoning before embedding products (default on; off is faster but not the trained path)."),
    query_reasoning: bool = typer.Option(None, "--query-reasoning/--no-query-reasoning", help="Same for queries and category names (default on)."),
    device: str = typer.Option(None, "--device", help="torch device (default cpu)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow model folders / hub repos to run their own Python code (off by default)."),
    overwrite_output: bool = typer.Option(False, "--overwrite-output", help=OVERWRITE_OUTPUT_HELP),
    config: Path = typer.Option(None, "--config", help="YAML file setting EvalConfig fields."),
    overrides: list[str] = typer.Option(None, "--set", help="KEY=VALUE for any EvalConfig field (repeatable)."),
) -> None:
    """Evaluate a model (and baselines) on a catalog: retrieval, classification and attributes."""
    fixed = {
        "model": model,
        "data": str(data) if data else None,
        "out": str(out) if out else None,
        "tasks": [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
        "baselines": list(baseline) if baseline else None,
        "base_model": base_model,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "max_products": max_products,
        "max_queries": max_queries,
        "max_attribute_records": max_attribute_records,
        "sample_seed": sample_seed,
        "knn_k": knn_k,
        "reasoning": reasoning,
        "query_reasoning": query_reasoning,
        "device": device,
        "trust_remote_code": True if trust_remote_code else None,
        "overwrite_output": True if overwrite_output else None,
    }
    run_guarded(_run, config, overrides or [], fixed)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
