"""A moon-rl-shaped output with random (untrained) LoRA and head weights, for smoke tests and benchmarks.

    from moon_rl.eval.random_run import write_random_run
    write_random_run("runs/tiny-vl", "runs/random-sft", pooling="fusion", residual=True)

The folder has exactly what a finished `moon-rl sft|grpo` run leaves (adapter_config.json +
adapter_model.safetensors, tokenizer/processor, moon_extras.*, moon_rl.json), so `moon_rl.load`,
`moon-rl eval` and `moon-rl export-adapter` can be exercised without training. The LoRA B matrices (zero
at init) and the residual gates (zero at init) get small random values, so the adapter and the residual
module really change the model's outputs. Nothing here is a trained model: its metrics mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from moon_rl.errors import MoonError


def write_random_run(
    base_model: str | Path,
    out: str | Path,
    *,
    kind: str = "sft",
    pooling: str = "mean",
    residual: bool = False,
    embedding_dim: int = 32,
    lora_r: int = 4,
    scale: float = 0.05,
    seed: int = 0,
) -> Path:
    from moon_rl.head.args import EmbeddingArgs
    from moon_rl.head.extras import detached_extras, save_extras
    from moon_rl.inference import RUN_META
    from moon_rl.models.loading import ModelArgs, lora_config, load_policy
    from moon_rl.trainers.common import setup_extras

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MoonError(f"{out} is not empty; choose a new folder")
    base_model = str(Path(base_model).resolve())
    args = ModelArgs(model=base_model, lora_r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0)
    model, processor, _ = load_policy(args)
    from peft import get_peft_model

    model = get_peft_model(model, lora_config(args))
    emb_args = EmbeddingArgs(embedding_dim=embedding_dim, pooling=pooling, residual_enhancement=residual)
    extras = setup_extras(model, emb_args, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "moon_extras" in name:
                param.add_(torch.randn(param.shape, generator=gen) * scale)
    out.mkdir(parents=True, exist_ok=True)
    with detached_extras(model):
        model.save_pretrained(out)
    save_extras(extras, out)
    processor.save_pretrained(out)
    meta = {"kind": kind, "base_model": base_model, "config": {**emb_args.embedding_fields(), "seed": seed, "random_weights": True}}
    (out / RUN_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
