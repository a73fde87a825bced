"""Shared helpers of the GRPO tests (tests/moon_rl/test_grpo*.py): tiny data, fast configs, trainers.

Not a test module. Datasets are built once per session (module-level cache, since several test modules
import these helpers) from a 32-product synthetic catalog:
- `grpo_dataset("vl")`: the train split with 32 px images and query rows (text-only rows mixed in);
- `grpo_dataset("vl", query_rows=False)`: every row has an image (what plain TRL can batch);
- `grpo_dataset("text")`: the same rows without images, for the text-only tiny model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


_CACHE: dict = {}
ROOT = Path(__file__).resolve().parents[2]


def _catalog() -> Path:
    if "catalog" not in _CACHE:
        from data_prep.synth import SynthConfig, synth_catalog

        out = Path(tempfile.mkdtemp(prefix="moon-grpo-catalog-")) / "catalog"
        synth_catalog(out, SynthConfig(products=32, seed=0, image_size=32), progress=False)
        _CACHE["catalog"] = out
    return _CACHE["catalog"]


def grpo_dataset_dir(kind: str = "text", query_rows: bool = True) -> Path:
    key = (kind, query_rows)
    if key not in _CACHE:
        from data_prep.tasks import prepare_task

        out = Path(tempfile.mkdtemp(prefix=f"moon-grpo-{kind}-")) / "grpo"
        prepare_task("grpo", _catalog(), out, split="train", with_images=kind == "vl", query_rows=query_rows, progress=False)
        _CACHE[key] = out
    return _CACHE[key]


def grpo_dataset(kind: str = "text", query_rows: bool = True):
    from datasets import load_from_disk

    return load_from_disk(str(grpo_dataset_dir(kind, query_rows)))


def fast_config(out_dir, **overrides):
    """A MoonGRPOConfig that runs a step in a few seconds on CPU."""
    from moon_rl.trainers.grpo.config import MoonGRPOConfig

    values = dict(
        output_dir=str(out_dir),
        max_steps=2,
        per_device_train_batch_size=8,
        num_generations=2,
        max_completion_length=12,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        activation_checkpointing=False,
        bf16=False,
        seed=0,
        contrastive_weight=0.5,
        disable_tqdm=True,
    )
    values.update(overrides)
    return MoonGRPOConfig(**values)


def load_model(model_dir: Path):
    from moon_rl.models.loading import ModelArgs, load_policy

    model, processor, _ = load_policy(ModelArgs(model=str(model_dir), dtype="float32"))
    getattr(processor, "tokenizer", processor).padding_side = "left"  # TRL's contract (plain TRL does not enforce it)
    return model, processor


def lora(r: int = 8, dropout: float = 0.0):
    from moon_rl.models.loading import ModelArgs, lora_config

    return lora_config(ModelArgs(model="unused", lora_r=r, lora_alpha=2 * r, lora_dropout=dropout))


def moon_trainer(model_dir: Path, config, rewards=None, dataset=None, cls=None, use_lora: bool = True, **kwargs):
    """A trainer (MoonGRPOTrainer by default) on the tiny model in `model_dir`, LoRA r=8 without dropout
    (or full fine-tuning with `use_lora=False`)."""
    from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer
    from reward_fns.registry import resolve_rewards

    cls = cls or MoonGRPOTrainer
    model, processor = load_model(model_dir)
    if rewards is None:
        rewards, _ = resolve_rewards(["format", "attribute_f1"])
    return cls(model=model, reward_funcs=rewards, args=config, train_dataset=dataset, processing_class=processor,
               peft_config=lora() if use_lora else None, **kwargs)
