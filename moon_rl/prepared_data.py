"""Loading and checking the prepared datasets both trainers read (`moon-rl data prepare --task sft|grpo`).

`load_prepared(path, task)` accepts a prepared dataset folder or a catalog (prepared on the fly, train
split). `check_rows(...)` fails on the first unusable row, naming it; it reads only the light columns
and never decodes images. Each trainer adds its own per-row rule (`row_check`). `check_images(...)` is the door
for the `images` column: every image's stored bytes fully decoded under the pixel limit, no path read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError
from moon_rl.head.ids import ID_COLUMNS


def load_prepared(path: str | Path, task: str, with_images: bool = True):
    from datasets import Dataset, DatasetDict

    from data_prep.schema import PRODUCTS_FILE

    path = Path(path)
    if not path.is_dir():
        raise MoonError(f"--data {path}: no such folder (expected `moon-rl data prepare --task {task}` output or a catalog)")
    if (path / PRODUCTS_FILE).is_file():
        from data_prep.tasks import prepare_task

        return prepare_task(task, path, None, split="train", with_images=with_images)
    from moon_rl.file_checks import load_saved_dataset

    try:
        dataset = load_saved_dataset(path)  # a truncated arrow file: one line, not pyarrow's OSError
    except FileNotFoundError:
        raise MoonError(
            f"--data {path}: neither a prepared dataset (no dataset_info.json / state.json) nor a catalog (no {PRODUCTS_FILE}); "
            f"build one with `moon-rl data prepare --task {task} --catalog CATALOG --out DIR`"
        ) from None
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise MoonError(f"--data {path}: a DatasetDict without a 'train' split (has {list(dataset)})")
        dataset = dataset["train"]
    if not isinstance(dataset, Dataset):
        raise MoonError(f"--data {path}: expected a datasets.Dataset, got {type(dataset).__name__}")
    return dataset


def where(source: str, index: int, row_id: Any) -> str:
    return f"{source}: row {index} (id={row_id!r})" if row_id not in (None, "") else f"{source}: row {index}"


def check_rows(
    dataset,
    source: str,
    task: str,
    required: tuple[str, ...],
    needs_groups: bool,
    model_takes_images: bool,
    row_check: Callable[[dict[str, Any], str], None] | None = None,
    light_columns: tuple[str, ...] = (),
) -> None:
    """Columns present, rows non-empty, ids unique, group ids usable; then `row_check(row, where)` per row."""
    columns = set(dataset.column_names)
    missing = [c for c in required + (ID_COLUMNS if needs_groups else ()) if c not in columns]
    if missing:
        why = " ('id'/'group_id' define the contrastive positives; or set contrastive_weight=0)" if set(missing) & set(ID_COLUMNS) else ""
        raise MoonError(
            f"{source}: dataset is missing column(s) {missing}{why}; it has {sorted(columns)}. "
            f"Build {task.upper()} data with `moon-rl data prepare --task {task}`."
        )
    if len(dataset) == 0:
        raise MoonError(f"{source}: dataset has no rows")
    if "images" in columns and not model_takes_images:
        raise MoonError(
            f"{source}: dataset has an 'images' column but the model is text-only; prepare the data with --no-images "
            "or use a vision-language model"
        )
    from tqdm.auto import tqdm

    light = [c for c in dict.fromkeys(("prompt", *ID_COLUMNS, *light_columns)) if c in columns]
    rows = dataset.select_columns(light)
    seen: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for index, row in enumerate(tqdm(rows, desc=f"check {task.upper()} data", unit="row", disable=len(rows) < 20_000)):
        at = where(source, index, row.get("id"))
        for key in ID_COLUMNS:
            if key in row and (not isinstance(row[key], str) or not row[key].strip()):
                raise MoonError(f"{at}: column '{key}' must be a non-empty string, got {row[key]!r}")
        if not row["prompt"]:
            raise MoonError(f"{at}: 'prompt' is empty")
        if "id" in row:
            if row["id"] in seen:
                raise MoonError(f"{at}: duplicate id (also row {seen[row['id']]}); ids must be unique")
            seen[row["id"]] = index
        if "group_id" in row:
            sizes[row["group_id"]] = sizes.get(row["group_id"], 0) + 1
        if row_check is not None:
            row_check(row, at)
    if needs_groups and max(sizes.values(), default=0) < 2:
        raise MoonError(
            f"{source}: no two rows share a group_id, so the contrastive loss has no positives; add views or query rows "
            "(`moon-rl data prepare` adds query rows by default) or set contrastive_weight=0"
        )


def check_images(dataset, source: str) -> None:
    """Every image of the `images` column carries its bytes, and they decode (`data_prep.images.check_image_bytes`:
    allowed format, pixel and byte limits, fully decoded). A path without bytes is never read: `datasets` would
    open it relative to the working directory, wherever it points (`../../etc/passwd`), and `moon-rl data
    prepare` always stores the bytes (`save_to_disk` embeds local files too)."""
    from datasets import Image, List

    from data_prep.images import check_image_bytes

    feature = dataset.features["images"]
    if not isinstance(feature, List) or not isinstance(feature.feature, Image):
        return  # images stored some other way (already PIL objects in memory): the collator will tell
    raw = dataset.select_columns(["images", *(["id"] if "id" in dataset.column_names else [])])
    raw = raw.cast_column("images", List(Image(decode=False)))
    for index, row in enumerate(raw):
        for k, image in enumerate(row["images"] or []):
            at = where(source, index, row.get("id"))
            path = image.get("path")
            if image.get("bytes"):
                check_image_bytes(image["bytes"], f"{at}: image {k} ({path or 'stored bytes'})")
                continue
            if not path or not Path(path).is_file():
                raise MoonError(f"{at}: image file {path!r} not found (and no bytes stored)")
            raise MoonError(
                f"{at}: image {path!r} is a path with no bytes stored in the dataset; moon-rl never reads image paths "
                "from a prepared dataset (they could point anywhere); prepare it again with `moon-rl data prepare`, "
                "which stores every image's bytes"
            )
