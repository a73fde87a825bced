"""The two trainers, side by side: `sft/` (TRL `SFTTrainer` + the contrastive head) and `grpo/` (TRL
`GRPOTrainer` + the same head), with what they share in `common.py`. Each trainer file holds its overrides of
TRL and nothing else. Imports are lazy so that `import moon_rl.trainers` pulls in no torch or TRL.
"""

from __future__ import annotations

from moon_rl.lazy import lazy_exports

_EXPORTS = {
    "MoonSFTConfig": "moon_rl.trainers.sft.config",
    "build_sft_configs": "moon_rl.trainers.sft.config",
    "MoonSFTTrainer": "moon_rl.trainers.sft.trainer",
    "run_sft": "moon_rl.trainers.sft.run",
    "MoonGRPOConfig": "moon_rl.trainers.grpo.config",
    "build_grpo_configs": "moon_rl.trainers.grpo.config",
    "MoonGRPOTrainer": "moon_rl.trainers.grpo.trainer",
    "run_grpo": "moon_rl.trainers.grpo.run",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports("moon_rl.trainers", _EXPORTS)
