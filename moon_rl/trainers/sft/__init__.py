"""SFT cold start with a contrastive embedding head (MOON3.0 step one).

- `config.py`: `MoonSFTConfig` (TRL `SFTConfig` + `EmbeddingArgs`), `build_sft_configs` (YAML / --set / flags).
- `trainer.py`: `MoonSFTTrainer` (TRL `SFTTrainer` + in-batch InfoNCE on the same forward pass).
- `run.py`: `run_sft` (validate data, load model, train, save) behind `moon-rl sft`.

Imports are lazy so that `import moon_rl.trainers.sft` does not pull in torch/TRL.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MoonSFTConfig", "MoonSFTTrainer", "build_sft_configs", "run_sft"]


def __getattr__(name: str) -> Any:
    if name in ("MoonSFTConfig", "build_sft_configs"):
        from moon_rl.trainers.sft import config

        return getattr(config, name)
    if name == "MoonSFTTrainer":
        from moon_rl.trainers.sft.trainer import MoonSFTTrainer

        return MoonSFTTrainer
    if name == "run_sft":
        from moon_rl.trainers.sft.run import run_sft

        return run_sft
    raise AttributeError(f"module 'moon_rl.trainers.sft' has no attribute {name!r}")
