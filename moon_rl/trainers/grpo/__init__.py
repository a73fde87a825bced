"""Joint GRPO + InfoNCE (MOON3.0 step two): reasoning rollouts scored by rewards, and their pooled
embeddings trained contrastively in the same forward pass.

- `config.py`: `MoonGRPOConfig` (TRL `GRPOConfig` + `EmbeddingArgs` + reward specs), `build_grpo_configs`.
- `trainer.py`: `MoonGRPOTrainer` (TRL `GRPOTrainer` + contrastive term; which methods it overrides and why).
- `rollout_embeddings.py`: no-grad rollout embeddings for rewards and for the contrastive candidate bank.
- `run.py`: `run_grpo` (validate data, resolve rewards, load model, train, save) behind `moon-rl grpo`.

Imports are lazy so that `import moon_rl.trainers.grpo` does not pull in torch/TRL.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MoonGRPOConfig", "MoonGRPOTrainer", "build_grpo_configs", "run_grpo"]


def __getattr__(name: str) -> Any:
    if name in ("MoonGRPOConfig", "build_grpo_configs"):
        from moon_rl.trainers.grpo import config

        return getattr(config, name)
    if name == "MoonGRPOTrainer":
        from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer

        return MoonGRPOTrainer
    if name == "run_grpo":
        from moon_rl.trainers.grpo.run import run_grpo

        return run_grpo
    raise AttributeError(f"module 'moon_rl.trainers.grpo' has no attribute {name!r}")
