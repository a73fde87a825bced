"""`moon-rl data ...`: make and prepare product data.

    moon-rl data synth --out data/synth --products 2000 --seed 0
    moon-rl data prepare --task sft --catalog data/synth --out data/sft
    moon-rl data prepare --task grpo --catalog data/synth --out data/grpo_test --split test
    moon-rl data prepare --source SOURCE --input raw.csv --out data/shop --map title=name   # raw -> catalog
    moon-rl data prepare --source SOURCE --input raw.csv --task sft --out data/shop         # both: OUT/catalog, OUT/sft

The commands only parse options and call `data_prep.synth.synth_catalog`, `data_prep.tasks.prepare_task` and
`data_prep.sources.convert_source`; see data_prep/README.md for the formats.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from data_prep.sources import SOURCES
from moon_rl.cli.common import echo_err, run_guarded
from moon_rl.errors import MoonError

data_app = typer.Typer(
    help="Make a synthetic catalog, convert raw catalogs, prepare SFT/GRPO datasets.", no_args_is_help=True
)


def _synth(out: Path, products: int, seed: int, image_size: int, force: bool, pairs: int = 0) -> None:
    from data_prep.synth import SynthConfig, synth_catalog

    from moon_rl.file_checks import check_output

    check_output(out, {})
    if pairs:
        from data_prep.synth_pairs import PAIRS_FILES, PairsConfig, synth_pairs

        if out.exists() and any(out.iterdir()):
            if not force:
                raise MoonError(f"--out {out}: not empty; pass --force to write the pairs into it anyway")
            others = sorted(p.name for p in out.iterdir() if p.name not in PAIRS_FILES)
            if others:  # --force only over an earlier `data synth --pairs`: its images/ would mix with a catalog's
                raise MoonError(
                    f"--out {out}: --force replaces only earlier `data synth --pairs` output ({', '.join(PAIRS_FILES)}), "
                    f"and it holds {others[0]}; choose a new folder"
                )
        typer.echo(json.dumps(synth_pairs(out, PairsConfig(pairs=pairs, seed=seed, image_size=image_size)), indent=2))
        return
    summary = synth_catalog(out, SynthConfig(products=products, seed=seed, image_size=image_size), force=force)
    typer.echo(json.dumps(summary, indent=2))


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the catalog to (products.jsonl, images/, splits/)."),
    products: int = typer.Option(1000, "--products", help="Number of product records (views) to generate."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    image_size: int = typer.Option(64, "--image-size", help="Image width and height in pixels."),
    force: bool = typer.Option(False, "--force", help="Replace a catalog already in --out."),
    pairs: int = typer.Option(
        0, "--pairs", help="Write N synthetic A-vs-B pairs instead (which of two renders matches the title): "
        "OUT/train.jsonl, OUT/test.jsonl, OUT/images/, for `data prepare --task pairwise`."
    ),
) -> None:
    """Generate a synthetic, MBE-like catalog whose products differ only in fine-grained attributes (or --pairs)."""
    run_guarded(_synth, out, products, seed, image_size, force, pairs)


def parse_map(pairs: list[str]) -> dict[str, str]:
    """`["title=name", ...]` -> {"title": "name"}; a pair without '=' fails naming it."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise MoonError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. --map title=product_name")
        mapping[field.strip()] = column.strip()
    return mapping


def _prepare(
    task: str | None,
    source: str | None,
    catalog: Path | None,
    input_path: Path | None,
    out: Path,
    split: str,
    images: bool,
    query_rows: bool,
    mapping: list[str],
    on_error: str,
    allow_remote_images: bool,
    empty_targets: bool = False,
    pairs: Path | None = None,
    trace: str = "template",
) -> None:
    from data_prep.formats import TRACE_STYLES
    from data_prep.tasks import TASKS, prepare_task

    if task == "pairwise" or pairs is not None:
        return _prepare_pairwise(task, pairs, out, images, on_error, catalog, source)
    from moon_rl.file_checks import check_output

    if task is not None and task not in TASKS:
        raise MoonError(f"--task {task!r}: unknown task; choose one of {[*TASKS, 'pairwise']}")
    if task is None and source is None:
        raise MoonError(
            "give --task sft|grpo (build a dataset from --catalog), --source (convert --input into a catalog), "
            "or both (convert into OUT/catalog, then build OUT/<task>)"
        )
    if on_error not in ("stop", "skip"):
        raise MoonError(f"--on-error {on_error!r}: choose 'stop' or 'skip'")
    if trace not in TRACE_STYLES:
        raise MoonError(f"--trace {trace!r}: choose one of {', '.join(TRACE_STYLES)}")
    field_map = parse_map(mapping)
    # The output is written beside nothing the user gave: never into, inside or around the catalog / raw input.
    check_output(out, {"--catalog": catalog, "--input": input_path})
    if source is not None:
        if input_path is None:
            raise MoonError("--source needs --input PATH (the raw catalog file or folder to convert)")
        if catalog is not None:
            raise MoonError(
                "--catalog is not used with --source: the converted catalog goes to --out (or OUT/catalog with --task)"
            )
        try:
            from data_prep.sources import convert_source
        except ImportError as err:
            raise MoonError(f"--source is not available in this install (data_prep.sources: {err})") from None
        catalog = out / "catalog" if task is not None else out
        report = convert_source(
            source,
            input_path,
            catalog,
            mapping=field_map,
            on_error=on_error,
            allow_remote_images=allow_remote_images,
        )
        typer.echo(json.dumps(report, indent=2, default=str))
        if task is None:
            return
        out = out / task
    elif catalog is None:
        raise MoonError("--task needs --catalog DIR (a catalog folder from `moon-rl data synth` or `--source`)")
    elif input_path is not None or mapping:
        raise MoonError("--input and --map only apply with --source")

    skipped: dict = {}
    dataset = prepare_task(
        task, catalog, out, split=split, with_images=images, query_rows=query_rows, on_error=on_error, report=skipped,
        empty_targets=empty_targets, trace=trace,
    )
    summary = {"out": str(out), "task": task, "split": split, "rows": len(dataset), "columns": dataset.column_names}
    if skipped.get("skipped"):
        summary.update(skipped)
        echo_err(
            f"skipped {skipped['skipped']} records --task {task} cannot use; first ids: {skipped['skipped_ids']}; "
            f"first reason: {skipped['skip_reasons'][0]}"
        )
    typer.echo(json.dumps(summary, indent=2))


def _prepare_pairwise(
    task: str | None, pairs: Path | None, out: Path, images: bool, on_error: str, catalog: Path | None, source: str | None
) -> None:
    from data_prep.pairwise import prepare_pairwise

    if task != "pairwise":
        raise MoonError("--pairs is the input of --task pairwise; add --task pairwise")
    if pairs is None:
        raise MoonError("--task pairwise needs --pairs FILE (a JSONL file of A-vs-B pairs; `moon-rl data synth --pairs N` makes one)")
    if catalog is not None or source is not None:
        raise MoonError("--task pairwise reads --pairs only; --catalog and --source do not apply")
    if on_error not in ("stop", "skip"):
        raise MoonError(f"--on-error {on_error!r}: choose 'stop' or 'skip'")
    from data_prep.pairwise import check_pairs_output
    from moon_rl.file_checks import check_output

    # A new folder beside the pairs file is fine; the file, its folder and the folders of its images are inputs.
    check_output(out, {"--pairs": pairs})
    check_pairs_output(out, pairs)
    report: dict = {}
    datasets = prepare_pairwise(pairs, out, with_images=images, on_error=on_error, report=report)
    summary = {"out": {name: str(out / name) for name in datasets}, "task": "pairwise", "rows": len(datasets["sft"]),
               "columns": datasets["sft"].column_names, **report}
    if report.get("skipped"):
        echo_err(f"skipped {report['skipped']} bad pairs; first: {report['skip_reasons'][0]}")
    typer.echo(json.dumps(summary, indent=2))


def _choices(names) -> str:
    return "[" + "|".join(names) + "]"


_OUT_HELP = "Output folder: the dataset, the converted catalog, or both as OUT/catalog + OUT/<task>."
_IMAGES_HELP = "Put product images in the prompt (--no-images for text-only models)."
_QUERY_HELP = "Add one text-only row per search query, sharing the product's group_id (contrastive positives)."
_MAP_HELP = "FIELD=COLUMN: take schema FIELD from raw COLUMN (repeatable; with --source)."
_ON_ERROR_HELP = (
    "A bad raw record (--source) or one the --task cannot use (an SFT record without attributes): stop, "
    "failing with it named, or skip it, counted in the report with the first ids."
)
_REMOTE_HELP = "Allow downloading images given as http(s) URLs (with --source)."
_SOURCE_HELP = "Raw catalog format to convert (--input) into a moon-rl catalog. " + "; ".join(
    f"{name} = {spec.help}" for name, spec in SOURCES.items()
) + "."
_TASK_HELP = "Dataset to build: sft or grpo (from --catalog), pairwise (from --pairs)."
_TRACE_HELP = (
    "SFT trace style: template (a line per attribute saying where its value is shown) or compact (one line naming "
    "which asked attributes the title states, then the answer: about half the tokens, for small models on CPU)."
)
_PAIRS_HELP = "JSONL file of A-vs-B pairs for --task pairwise (image paths relative to the file; see data_prep/pairwise.py)."


@data_app.command("prepare")
def prepare(
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    task: str | None = typer.Option(None, "--task", metavar=_choices(("sft", "grpo", "pairwise")), help=_TASK_HELP),
    catalog: Path | None = typer.Option(None, "--catalog", help="Catalog folder to build the --task dataset from."),
    split: str = typer.Option("train", "--split", help="Catalog split to use (splits/<split>.txt): train or test."),
    images: bool = typer.Option(True, "--images/--no-images", help=_IMAGES_HELP),
    query_rows: bool = typer.Option(True, "--query-rows/--no-query-rows", help=_QUERY_HELP),
    source: str | None = typer.Option(None, "--source", metavar=_choices(SOURCES), help=_SOURCE_HELP),
    input_path: Path | None = typer.Option(None, "--input", help="Raw catalog file or folder (with --source)."),
    mapping: list[str] = typer.Option([], "--map", help=_MAP_HELP),
    on_error: str = typer.Option("stop", "--on-error", metavar=_choices(("stop", "skip")), help=_ON_ERROR_HELP),
    pairs: Path | None = typer.Option(None, "--pairs", help=_PAIRS_HELP),
    allow_remote_images: bool = typer.Option(False, "--allow-remote-images", help=_REMOTE_HELP),
    empty_targets: bool = typer.Option(
        False, "--empty-targets", help="SFT: keep records without attributes, with a trace saying the title names none "
        "(matching catalogs, where the contrastive term is the point); default: such records are an error (or skipped)."
    ),
    trace: str = typer.Option("template", "--trace", metavar=_choices(("template", "compact")), help=_TRACE_HELP),
) -> None:
    """Convert a raw catalog (--source) and/or build an SFT or GRPO dataset from a catalog (--task), or a
    pairwise dataset from a pairs file (--task pairwise --pairs FILE)."""
    run_guarded(
        _prepare, task, source, catalog, input_path, out, split, images, query_rows, mapping, on_error, allow_remote_images,
        empty_targets, pairs, trace,
    )



def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
