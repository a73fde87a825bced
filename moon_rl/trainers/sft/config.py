"""`MoonSFTConfig`: TRL's `SFTConfig` plus the embedding-head fields of `moon_rl.head.args.EmbeddingArgs`.

Every field can be set from a YAML file (`--config`) or `--set key=value`; the model-loading fields of
`moon_rl.models.loading.ModelArgs` (`model`, `lora_r`, `load_in_4bit`, ...) are accepted in the same places
and split off by `build_sft_configs`, so one YAML describes a whole run.

Departures from `SFTConfig` defaults (the rest are TRL's):
- `completion_only_loss=True`: the loss is on the reasoning trace, never on the product text in the prompt.
- `report_to="auto"`: tensorboard when it is installed, no integration otherwise.
- `bf16` unset on a machine without CUDA means fp32 (TRL would pick bf16 and then fail validation there).
Added: `next_token_weight` (1.0, TRL's loss as it is); 0 skips the forward over prompt + trace altogether, a pure
contrastive fine-tune of the "input" embedding (see the field's help and configs/sft_smollm2_matching.yaml).
CPU-friendly values (fp32, no gradient checkpointing) live in `configs/sft_tiny.yaml`, not here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from trl import SFTConfig

from moon_rl.config_io import build_run_configs
from moon_rl.errors import MoonError
from moon_rl.head.args import EmbeddingArgs
from moon_rl.head.pooling import REASONING_POOLINGS
from moon_rl.trainers.defaults import RuntimeDefaults
from moon_rl.models.loading import ModelArgs


@dataclasses.dataclass
class MoonSFTConfig(SFTConfig, EmbeddingArgs, RuntimeDefaults):
    """SFT cold start with a contrastive embedding head. See `EmbeddingArgs` for the head's fields;
    `contrastive_weight=0` with both MOON3.0 modules off trains exactly like TRL's `SFTTrainer` (no add-on
    attached, no `id`/`group_id` columns needed). `MoonSFTTrainer(args=None)` builds one with these defaults."""

    completion_only_loss: bool | None = dataclasses.field(
        default=True,
        metadata={"help": "Compute the loss only on the completion (the reasoning trace). None lets TRL decide from the dataset format."},
    )
    # SFT's own: the weight of TRL's next-token loss. 0 = a contrastive-only step: no forward over prompt + trace at
    # all (about 3x cheaper per step on SmolLM2-135M, benchmarks/sft_vs_plain.py); only pooling "input" has an
    # embedding without that forward, so 0 needs it.
    next_token_weight: float = dataclasses.field(
        default=1.0,
        metadata={
            "help": "Weight of TRL's next-token loss on the completion. 0 skips that forward entirely (pooling 'input' and "
            "the contrastive term on): a contrastive-only fine-tune of the embedding, the reasoning left as the base wrote it. "
            "Poolings 'reasoning' / 'reasoning_token': the weight of the next-token loss on the reasoning of their own layout "
            "(text + cue + reasoning), computed from the same forward as the embedding; TRL's forward is not run."
        },
    )
    report_to: None | str | list[str] = dataclasses.field(
        default="auto",
        metadata={"help": "Logging integrations: 'auto' (tensorboard when installed, else none), 'none', 'all', or names."},
    )

    def __post_init__(self) -> None:
        self.apply_runtime_defaults()
        super().__post_init__()
        self.validate_embedding_args()
        self.configure_ddp_for_head()
        if self.next_token_weight < 0:
            raise MoonError(f"next_token_weight must be >= 0, got {self.next_token_weight}")
        if self.next_token_weight == 0 and not (self.contrastive_on and self.pooling in ("input", *REASONING_POOLINGS)):
            raise MoonError(
                "next_token_weight=0 leaves only the contrastive term on the record's own text: it needs contrastive_weight > 0 "
                f"and pooling='input' or a reasoning pooling {REASONING_POOLINGS} (got contrastive_weight={self.contrastive_weight}, "
                f"pooling={self.pooling!r}); "
                "the other poolings read the hidden states of the next-token forward"
            )
        if self.contrastive_on and (self.packing or self.padding_free):
            raise MoonError(
                "packing / padding_free put several records in one sequence, so there is no per-record embedding for "
                "the contrastive loss; set packing=false and padding_free=false, or contrastive_weight=0"
            )


def build_sft_configs(
    yaml_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    **flags: Any,
) -> tuple[MoonSFTConfig, ModelArgs]:
    """(trainer config, model args) from a YAML file, `--set` overrides and flags; see `build_run_configs`."""
    return build_run_configs(MoonSFTConfig, ModelArgs, yaml_path, overrides, flags)
