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
from moon_rl.prepared_data import check_images, check_rows, load_prepared
from moon_rl.models.loading import ModelArgs
from moon_rl.trainers.sft.config import MoonSFTConfig

REQUIRED_COLUMNS = ("prompt", "completion")


# ---- data -------------------------------------------------------------------------------------------


def load_sft_data(path: str | Path, with_images: bool = True):
    """A prepared SFT dataset folder, or a catalog folder prepared on the fly (train split)."""
    return load_prepared(path, "sft", with_images)


def _check_sft_row(row: dict[str, Any], at: str) -> None:
    if "title" in row and (not isinstance(row["title"], str) or not row["title"].strip()):
        raise MoonError(f"{at}: column 'title' is empty")
    completion = row["completion"]
    text = completion if isinstance(completion, str) else " ".join(str(m.get("content") or "") for m in completion or [])
    if not text.strip():
        raise MoonError(f"{at}: 'completion' is empty; SFT needs a target reasoning trace")


def validate_sft_dataset(dataset, source: str, needs_groups: bool, model_takes_images: bool) -> None:
    """Fail on the first unusable row, naming it: the light columns, then every image decoded (`check_images`)."""
    check_rows(
        dataset, source, "sft", REQUIRED_COLUMNS, needs_groups, model_takes_images,
        row_check=_check_sft_row, light_columns=("completion", "title"),
    )
    if "images" in dataset.column_names:
        check_images(dataset, source)


# ---- model + trainer --------------------------------------------------------------------------------


def build_trainer(config: MoonSFTConfig, model_args: ModelArgs, dataset, callbacks: list | None = None, eval_dataset=None):
    """Load the policy (base or moon-rl output) and wrap it in a `MoonSFTTrainer`."""
    from moon_rl.trainers.common import load_and_wrap
    from moon_rl.trainers.sft.trainer import MoonSFTTrainer

    return load_and_wrap(MoonSFTTrainer, config, model_args, dataset, callbacks, eval_dataset=eval_dataset)


# ---- train + save -----------------------------------------------------------------------------------


def run_sft(config: MoonSFTConfig, model_args: ModelArgs, data: str | Path, resume: str | bool | None = None) -> dict[str, Any]:
    """Validate, train, save. Returns a summary (output folder, steps, first/last logged metrics)."""
    from moon_rl.trainers.checkpoints import resolve_resume
    from moon_rl.trainers.interrupt import GracefulInterrupt
    from moon_rl.trainers.common import train_and_save

    resume_from = resolve_resume(config.output_dir, resume)
    from moon_rl.models.loading import model_is_vision_language

    takes_images = model_is_vision_language(model_args)
    dataset = load_sft_data(data, with_images=takes_images)
    validate_sft_dataset(dataset, str(data), needs_groups=config.contrastive_weight > 0, model_takes_images=takes_images)
    if config.contrastive_weight > 0:
        from moon_rl.trainers.sampling import batch_clusters

        batch_clusters(dataset, config.hard_negatives_by)  # a wrong column fails before the model loads

    interrupt = GracefulInterrupt()
    trainer = build_trainer(config, model_args, dataset, callbacks=[interrupt])
    return train_and_save(trainer, interrupt, "sft", model_args, resume_from, log_key="loss")
