"""`moon-rl data prepare --task sft|grpo`: a catalog split becomes a `datasets` dataset saved to disk.

    moon-rl data prepare --task sft  --catalog data/synth --out data/sft            # SFTTrainer input
    moon-rl data prepare --task grpo --catalog data/synth --out data/grpo --split train

Columns (the project's contract; rewards receive every column but `prompt`/`completion`/`images` as kwargs):

    prompt      conversational prompt: [{"role": "user", "content": ...}]. content is a list of parts
                [{"type": "image"}, ..., {"type": "text", "text": ...}] when the dataset has images, the plain
                string otherwise (text-only models, --no-images, catalogs without images)
    completion  SFT only: [{"role": "assistant", "content": trace}], trace = <think>...</think><answer>{...}</answer>
    images      list of images (datasets Image feature, loads as PIL); only when the catalog has images and
                images are wanted. Query rows have an empty list.
    id          str; product id, or "<product id>#q<k>" for the k-th query row of a product
    group_id    str; rows sharing it are contrastive positives (views of one item and its queries)
    title       str; the text the model reads (the product title, or the query text for query rows)
    category    str; category path "A > B > C"
    attributes  str; JSON object attribute name -> value (for query rows: only the attributes the query states)
    options     str; JSON object attribute name -> list of allowed values, "{}" when none

This is TRL's conversational prompt-completion format, so `SFTTrainer(train_dataset=load_from_disk(...))` takes
it as is (VL: the `images` column fills the image placeholders; text: the chat template renders the strings).

Query rows (on by default, `--no-query-rows` to drop): each search query of a product becomes a text-only row
with the product's `group_id`, so a product and the queries that found it are positives for the contrastive
loss; its SFT target is the trace over the attributes the query states.

Bad data fails before anything is written: an image path that leaves the catalog folder (`..`, an absolute path,
a symlink pointing outside), a missing, corrupt, truncated or oversized image (each is fully decoded under a pixel
limit: `data_prep.images.check_record_images`), an SFT record without attributes, a malformed teacher
`reasoning`, each with the record named (`--on-error skip` drops those records instead and reports how
many and the first ids); schema errors (empty title, duplicate id, ...) come from
`data_prep.schema`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from data_prep.errors import DataPrepError
from data_prep.formats import (
    QUERY_INSTRUCTION,
    TRACE_STYLES,
    attribute_names,
    build_trace,
    category_schema,
    find_mention,
    prompt_text,
    user_message,
)
from data_prep.images import check_record_images, resolve_image_path
from data_prep.schema import PRODUCTS_FILE, Product, RecordError, catalog_meta, load_catalog

TASKS = ("sft", "grpo")
ON_ERROR_CHOICES = ("stop", "skip")
MAX_SKIPPED_SHOWN = 10  # skipped ids named in the report; the count covers all


def _features(task: str, with_images: bool):
    from datasets import Features, Image, List, Value

    text = Value("string")
    if with_images:
        content: Any = List({"type": text, "text": text})
    else:
        content = text
    cols: dict[str, Any] = {"prompt": List({"role": text, "content": content})}
    if task == "sft":
        cols["completion"] = List({"role": text, "content": text})
    if with_images:
        cols["images"] = List(Image())
    cols.update({name: text for name in ("id", "group_id", "title", "category", "attributes", "options")})
    return Features(cols)


def query_product(product: Product, query: str, k: int) -> Product:
    """A text-only pseudo-record for one search query: the title is the query, the attributes are those it
    states. Options stay whole: they constrain values by name, so extra names do no harm."""
    stated = {n: v for n, v in product.attributes.items() if find_mention(query, v)}
    return dataclasses.replace(
        product,
        id=f"{product.id}#q{k}",
        title=query,
        description=None,
        images=[],
        attributes=stated,
        queries=[],
        reasoning=None,  # a teacher trace explains the product, not the query
    )


def _row(task: str, product: Product, messages: list, images: list | None, trace: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt": messages}
    if task == "sft":
        row["completion"] = [{"role": "assistant", "content": trace}]
    if images is not None:
        row["images"] = images
    row.update(
        id=product.id,
        group_id=product.group_id,
        title=product.title,
        category=product.category,
        attributes=json.dumps(product.attributes, ensure_ascii=False),
        options=json.dumps(product.options, ensure_ascii=False),
    )
    return row


def _check(task: str, products: list[Product], catalog_dir: Path, use_images: bool, empty_targets: bool = False) -> dict[Path, bytes]:
    """Fail on the first unusable record, before any work is done. Returns the verified bytes of every image
    (`data_prep.images.check_record_images`: inside the catalog, fully decoded under the pixel limit)."""
    source = catalog_dir / PRODUCTS_FILE
    n_bare = sum(not p.attributes for p in products) if task == "sft" else 0
    for product in products:
        if task == "sft" and not product.attributes and not empty_targets:
            raise DataPrepError(
                f"{source}: record id={product.id!r}: field 'attributes' is empty ({n_bare} of {len(products)} "
                "records in this split have none); SFT targets are built from the attributes, so add them, drop "
                "those records, pass --on-error skip, or --empty-targets to train them on a trace that says the title "
                "names no attribute (matching catalogs, where the contrastive term is the point)"
            )
        if task == "sft" and product.reasoning:
            build_trace(product)  # raises on a malformed teacher trace
    return check_record_images(products, catalog_dir, keep_bytes=True) if use_images else {}


def usable_products(
    task: str, products: list[Product], catalog_dir: Path, use_images: bool, on_error: str = "stop", empty_targets: bool = False
) -> tuple[list[Product], list[tuple[str, str]]]:
    """(the products the task can use, [(id, reason)] of those it cannot). "stop" raises at the first one
    (`_check`'s message); "skip" runs the same checks record by record and drops the ones that fail."""
    if on_error not in ON_ERROR_CHOICES:
        raise DataPrepError(f"--on-error {on_error!r}: choose one of {list(ON_ERROR_CHOICES)}")
    if on_error == "stop":
        verified = _check(task, products, catalog_dir, use_images, empty_targets)
        return products, []
    kept, skipped = [], []
    for product in products:
        if task == "sft" and not product.attributes and not empty_targets:  # the common case (AE-110K has 32): a short reason
            skipped.append((product.id, f"id={product.id!r}: field 'attributes' is empty (no SFT target)"))
            continue
        try:
            _check(task, [product], catalog_dir, use_images, empty_targets)
        except DataPrepError as err:
            skipped.append((product.id, str(err)))
        else:
            kept.append(product)
    if not kept:
        raise DataPrepError(f"{catalog_dir / PRODUCTS_FILE}: no record left for --task {task}: all {len(products)} were "
                        f"skipped; first: {skipped[0][1]}")
    return kept, skipped


def prepare_task(
    task: str,
    catalog_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    split: str = "train",
    with_images: bool = True,
    query_rows: bool = True,
    progress: bool = True,
    on_error: str = "stop",
    report: dict[str, Any] | None = None,
    empty_targets: bool = False,
    trace: str = "template",
):
    """Build the `task` dataset from one split of a catalog; save it to `out_dir` when given. Returns it.

    `trace`: the SFT trace style (`data_prep.formats.TRACE_STYLES`: the template's line per attribute, or compact).

    `on_error="skip"` drops the records the task cannot use (an SFT record without attributes, ...) instead of
    failing; `report`, when given, receives {"skipped": n, "skipped_ids": first ids, "skip_reasons": first few}.
    """
    from datasets import Dataset
    from tqdm.auto import tqdm

    if task not in TASKS:
        raise DataPrepError(f"--task {task!r}: unknown task; choose one of {list(TASKS)}")
    if trace not in TRACE_STYLES:
        raise DataPrepError(f"--trace {trace!r}: unknown trace style; choose one of {list(TRACE_STYLES)}")
    catalog_dir = Path(catalog_dir)
    try:
        products = load_catalog(catalog_dir, split=split)
    except (RecordError, FileNotFoundError) as err:
        raise DataPrepError(str(err)) from None
    use_images = with_images and any(p.images for p in products)
    products, skipped = usable_products(task, products, catalog_dir, use_images, on_error, empty_targets)
    if report is not None:
        report.update(
            skipped=len(skipped),
            skipped_ids=[i for i, _ in skipped[:MAX_SKIPPED_SHOWN]],
            skip_reasons=[r for _, r in skipped[:3]],
        )
    # The catalog's own word on which attributes its images show, and on each category's attribute names.
    image_attributes = catalog_meta(catalog_dir, "image_attributes")
    schema = category_schema(catalog_dir)

    rows = []
    for product in tqdm(products, desc=f"prepare {task} ({split})", unit="product", disable=not progress):
        images = None
        if use_images:
            # The original bytes, not re-encoded: the dataset is self-contained and byte-faithful to the catalog.
            # They are the bytes verified here (inside the catalog, fully decoded), not a later re-read.
            verified = check_record_images([product], catalog_dir, keep_bytes=True)
            root = catalog_dir.resolve()
            paths = [resolve_image_path(ref, catalog_dir) for ref in product.images]
            images = [{"bytes": verified[p], "path": str(p.relative_to(root))} for p in paths]
        names = attribute_names(product, schema)
        messages = [user_message(prompt_text(product, names=names), len(images or []), parts=use_images)]
        target = (
            build_trace(product, has_images=use_images, image_attributes=image_attributes, style=trace)
            if task == "sft" else None
        )
        rows.append(_row(task, product, messages, images, target))
        if not query_rows:
            continue
        for k, query in enumerate(product.queries):
            qp = query_product(product, query, k)
            candidates = list(product.attributes)
            text = prompt_text(qp, instruction=QUERY_INSTRUCTION, text_label="query", candidates=candidates)
            q_trace = build_trace(qp, text_label="query", has_images=False, style=trace) if task == "sft" else None
            rows.append(_row(task, qp, [user_message(text, parts=use_images)], [] if use_images else None, q_trace))

    dataset = Dataset.from_list(rows, features=_features(task, use_images))
    if out_dir is not None:
        dataset.save_to_disk(str(out_dir))
    return dataset
