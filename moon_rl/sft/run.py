"""Run an SFT cold start end to end: config -> data -> model -> trainer -> train -> save.

    moon-rl sft --model runs/tiny-vl --data data/sft --out runs/sft --config configs/sft_tiny.yaml
    moon-rl sft ... --resume latest          # continue from the newest complete checkpoint in --out

`--data` is a prepared dataset (`moon-rl data prepare --task sft`, a `save_to_disk` folder) or a catalog
folder (products.jsonl ...), which is prepared on the fly with `data_prep.tasks.prepare_task` (train split).
Everything that can be checked before the model is loaded is checked first: QLoRA availability, the dataset's
columns and every row's id / group_id / completion / image, so bad data fails in seconds with the row named.

Output (`--out`): HF checkpoints `checkpoint-N/` (adapter + moon_extras.* + optimizer state, resumable), and at
the end the final adapter (or full model with --no-lora), processor files, `moon_extras.safetensors` +
`moon_extras.json`, `trainer_state.json` (log history) and `moon_rl.json` (what was trained, from what, how).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError
from moon_rl.modeling import ModelArgs, write_run_info
from moon_rl.sft.config import MoonSFTConfig

REQUIRED_COLUMNS = ("prompt", "completion")
ID_COLUMNS = ("id", "group_id")


# ---- data -------------------------------------------------------------------------------------------


def model_is_vision_language(model_args: ModelArgs) -> bool:
    """Read only the model's config (no weights) to know whether it takes images."""
    from transformers import AutoConfig

    from moon_rl.modeling import is_vision_language, resolve_source

    source = resolve_source(model_args.model, model_args.base_model)
    try:
        config = AutoConfig.from_pretrained(source.path, trust_remote_code=model_args.trust_remote_code)
    except OSError as err:
        raise MoonError(f"cannot read the config of model {source.path!r}: {err}") from None
    return is_vision_language(config)


def load_sft_data(path: str | Path, with_images: bool = True):
    """A prepared SFT dataset folder, or a catalog folder prepared on the fly (train split)."""
    from datasets import Dataset, DatasetDict, load_from_disk

    from data_prep.schema import PRODUCTS_FILE

    path = Path(path)
    if not path.is_dir():
        raise MoonError(f"--data {path}: no such folder (expected `moon-rl data prepare --task sft` output or a catalog)")
    if (path / PRODUCTS_FILE).is_file():
        from data_prep.tasks import prepare_task

        return prepare_task("sft", path, None, split="train", with_images=with_images)
    try:
        dataset = load_from_disk(str(path))
    except FileNotFoundError:
        raise MoonError(
            f"--data {path}: neither a prepared dataset (no dataset_info.json / state.json) nor a catalog (no {PRODUCTS_FILE}); "
            "build one with `moon-rl data prepare --task sft --catalog CATALOG --out DIR`"
        ) from None
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise MoonError(f"--data {path}: a DatasetDict without a 'train' split (has {list(dataset)})")
        dataset = dataset["train"]
    if not isinstance(dataset, Dataset):
        raise MoonError(f"--data {path}: expected a datasets.Dataset, got {type(dataset).__name__}")
    return dataset


def _where(path: str, index: int, row_id: Any) -> str:
    return f"{path}: row {index} (id={row_id!r})" if row_id not in (None, "") else f"{path}: row {index}"


def validate_sft_dataset(dataset, source: str, needs_groups: bool, model_takes_images: bool) -> None:
    """Fail on the first unusable row, naming it. Reads only the light columns, never decodes images."""
    columns = set(dataset.column_names)
    required = REQUIRED_COLUMNS + (ID_COLUMNS if needs_groups else ())
    missing = [c for c in required if c not in columns]
    if missing:
        why = " ('id'/'group_id' define the contrastive positives; or set contrastive_weight=0)" if set(missing) & set(ID_COLUMNS) else ""
        raise MoonError(
            f"{source}: dataset is missing column(s) {missing}{why}; it has {sorted(columns)}. "
            "Build SFT data with `moon-rl data prepare --task sft`."
        )
    if len(dataset) == 0:
        raise MoonError(f"{source}: dataset has no rows")
    if "images" in columns and not model_takes_images:
        raise MoonError(
            f"{source}: dataset has an 'images' column but the model is text-only; prepare the data with --no-images "
            "or use a vision-language model"
        )

    light = [c for c in ("prompt", "completion", "id", "group_id", "title") if c in columns]
    seen_ids: dict[str, int] = {}
    group_sizes: dict[str, int] = {}
    from tqdm.auto import tqdm

    rows = dataset.select_columns(light)
    for index, row in enumerate(tqdm(rows, desc="check SFT data", unit="row", disable=len(rows) < 20_000)):
        row_id = row.get("id")
        where = _where(source, index, row_id)
        for key in ("id", "group_id"):
            if key in row and (not isinstance(row[key], str) or not row[key].strip()):
                raise MoonError(f"{where}: column '{key}' must be a non-empty string, got {row[key]!r}")
        if row_id is not None:
            if row_id in seen_ids:
                raise MoonError(f"{where}: duplicate id (also row {seen_ids[row_id]}); ids must be unique")
            seen_ids[row_id] = index
        if "group_id" in row:
            group_sizes[row["group_id"]] = group_sizes.get(row["group_id"], 0) + 1
        if "title" in row and (not isinstance(row["title"], str) or not row["title"].strip()):
            raise MoonError(f"{where}: column 'title' is empty")
        if not row["prompt"]:
            raise MoonError(f"{where}: 'prompt' is empty")
        completion = row["completion"]
        text = completion if isinstance(completion, str) else " ".join(str(m.get("content") or "") for m in completion or [])
        if not text.strip():
            raise MoonError(f"{where}: 'completion' is empty; SFT needs a target reasoning trace")
    if needs_groups and max(group_sizes.values(), default=0) < 2:
        raise MoonError(
            f"{source}: no two rows share a group_id, so the contrastive loss has no positives; add views or query rows "
            "(`moon-rl data prepare` adds query rows by default) or set contrastive_weight=0"
        )
    if "images" in columns:
        _check_images(dataset, source)


def _check_images(dataset, source: str) -> None:
    """Every image must carry its bytes or point at a file that exists (checked without decoding)."""
    from datasets import Image, List

    feature = dataset.features["images"]
    if not isinstance(feature, List) or not isinstance(feature.feature, Image):
        return  # images stored some other way (already PIL objects in memory): the collator will tell
    raw = dataset.select_columns(["images", *(["id"] if "id" in dataset.column_names else [])])
    raw = raw.cast_column("images", List(Image(decode=False)))
    for index, row in enumerate(raw):
        for image in row["images"] or []:
            if image.get("bytes"):
                continue
            path = image.get("path")
            if not path or not Path(path).is_file():
                raise MoonError(f"{_where(source, index, row.get('id'))}: image file {path!r} not found (and no bytes stored)")


# ---- model + trainer --------------------------------------------------------------------------------


def build_trainer(config: MoonSFTConfig, model_args: ModelArgs, dataset, callbacks: list | None = None, eval_dataset=None):
    """Load the policy (base or moon-rl output) and wrap it in a `MoonSFTTrainer`."""
    from moon_rl.modeling import load_for_training
    from moon_rl.sft.trainer import MoonSFTTrainer

    model, processor, peft_config, extras_dir = load_for_training(model_args)
    return MoonSFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=callbacks,
        extras_dir=extras_dir,
    )


# ---- train + save -----------------------------------------------------------------------------------



def run_sft(config: MoonSFTConfig, model_args: ModelArgs, data: str | Path, resume: str | bool | None = None) -> dict[str, Any]:
    """Validate, train, save. Returns a summary (output folder, steps, first/last logged metrics)."""
    from moon_rl.checkpoints import resolve_resume
    from moon_rl.interrupt import GracefulInterrupt
    from moon_rl.modeling import check_4bit_available

    if model_args.load_in_4bit:
        check_4bit_available()
    resume_from = resolve_resume(config.output_dir, resume)
    takes_images = model_is_vision_language(model_args)
    dataset = load_sft_data(data, with_images=takes_images)
    validate_sft_dataset(dataset, str(data), needs_groups=config.contrastive_weight > 0, model_takes_images=takes_images)

    interrupt = GracefulInterrupt()
    trainer = build_trainer(config, model_args, dataset, callbacks=[interrupt])
    trainer.train(resume_from_checkpoint=resume_from)
    trainer.save_model(config.output_dir)
    if trainer.args.should_save:
        trainer.save_state()
        write_run_info(config.output_dir, "sft", config, model_args)

    logs = [h for h in trainer.state.log_history if "loss" in h]
    return {
        "out": config.output_dir,
        "global_step": trainer.state.global_step,
        "interrupted": interrupt.interrupted,
        "first": logs[0] if logs else {},
        "last": logs[-1] if logs else {},
    }
