"""`MoonGRPOConfig`: TRL's `GRPOConfig` plus the embedding-head fields of `moon_rl.head.args.EmbeddingArgs`
and the reward specs of a run.

Every field can be set from a YAML file (`--config`) or `--set key=value`; the model-loading fields of
`moon_rl.models.loading.ModelArgs` (`model`, `lora_r`, `load_in_4bit`, ...) are accepted in the same places and
split off by `build_grpo_configs`, so one YAML describes a whole run.

Departures from `GRPOConfig` defaults (the rest are TRL's, including loss_type, beta, num_iterations, ...):
- `report_to="auto"`: tensorboard when it is installed, no integration otherwise.
- `bf16`: TRL turns it on unless fp16 is set; here it stays on only when a CUDA device is visible, so the
  same YAML runs on a laptop CPU (`configs/grpo_tiny.yaml`) without a mixed-precision error.
- `use_cpu` is switched on under a multi-process launch without CUDA, so accelerate sets up gloo
  data parallelism instead of N independent single-process runs.
- `ddp_find_unused_parameters` defaults to off while the contrastive term trains (see `__post_init__`).
- While the contrastive term trains, a generation batch left to TRL's default that would hold a single prompt
  (TRL's per_device_train_batch_size=8 and num_generations=8 on one process) holds two: `steps_per_generation`
  doubles (see `two_prompts_per_generation`). With the term off, TRL's defaults exactly.

`temperature` is TRL's sampling temperature; the InfoNCE temperature is `contrastive_temperature`
(from `EmbeddingArgs`, the same name as in SFT).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from trl import GRPOConfig

from moon_rl.config_io import build_run_configs
from moon_rl.errors import MoonError
from moon_rl.head.args import EmbeddingArgs
from moon_rl.trainers.defaults import RuntimeDefaults
from moon_rl.models.loading import ModelArgs
from moon_rl.trainers.vllm_support import VLLM_MODES, require_vllm

# When no --reward is given. `retrieval` is opt-in (--reward retrieval=0.5): it costs a no-grad forward per
# generation batch unless TRL already runs one, and with a fresh head its ranks are noise for many steps.
DEFAULT_REWARDS = ("format", "attribute_f1")
REWARD_ERROR_MODES = ("raise", "skip")


@dataclasses.dataclass
class MoonGRPOConfig(GRPOConfig, EmbeddingArgs, RuntimeDefaults):
    """Joint GRPO + InfoNCE. See `EmbeddingArgs` for the head's fields; `contrastive_weight=0` with both
    MOON3.0 modules off trains exactly like TRL's `GRPOTrainer` (no add-on attached, no `id`/`group_id` columns
    needed). `MoonGRPOTrainer(args=None)` builds one with these defaults, named after the model as TRL does (the term off
    when the training set has no `id`/`group_id` columns: plain TRL data trains as with TRL)."""

    rewards: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Reward specs NAME[=WEIGHT], FILE.py:FUNC[=WEIGHT] or package.module:FUNC[=WEIGHT] "
            f"(see `moon-rl rewards list`). Default: {' + '.join(DEFAULT_REWARDS)}."
        },
    )
    reward_errors: str = dataclasses.field(
        default="raise",
        metadata={"help": "A reward function that raises: 'raise' stops training, 'skip' scores that batch None and counts it."},
    )
    contrastive_bank: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "When a generation batch is split over several micro-batches (steps_per_generation > 1), also score each "
            "micro-batch against the no-grad embeddings of the rest of its generation batch, so group members that TRL's "
            "shuffle put in another micro-batch still count as positives."
        },
    )
    merged_rollouts: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "Rollouts on transformers' generate (no vLLM) run with the LoRA adapter merged into the base weights, "
            "which are restored bit for bit afterwards (moon_rl/models/merged_lora.py): the same samples' distribution, "
            "fewer ops per token. Applies while the contrastive term trains; with it off the trainer is TRL's as is."
        },
    )
    report_to: None | str | list[str] = dataclasses.field(
        default="auto",
        metadata={"help": "Logging integrations: 'auto' (tensorboard when installed, else none), 'none', 'all', or names."},
    )

    def __post_init__(self) -> None:
        self.apply_runtime_defaults()
        if self.reward_errors not in REWARD_ERROR_MODES:
            raise MoonError(f"reward_errors must be one of {list(REWARD_ERROR_MODES)}, got {self.reward_errors!r}")
        if self.vllm_mode not in VLLM_MODES:
            raise MoonError(f"vllm_mode must be one of {list(VLLM_MODES)}, got {self.vllm_mode!r}")
        if self.use_vllm:  # checked once, here: every entry point builds a config before anything loads
            require_vllm(f"--use-vllm (vllm_mode={self.vllm_mode})")
        if isinstance(self.rewards, str):
            self.rewards = [self.rewards]
        self.reward_weights = self._reward_weights()
        generation_batch_given = self.generation_batch_size is not None or self.steps_per_generation is not None
        super().__post_init__()
        self.validate_embedding_args()
        self.configure_ddp_for_head()
        if not generation_batch_given:
            self.two_prompts_per_generation()

    def two_prompts_per_generation(self) -> None:
        """With the contrastive term on, a generation batch that TRL derived as one prompt's rollouts holds two
        prompts instead (`steps_per_generation` doubled; called only when the user set neither it nor
        `generation_batch_size`).

        Why: TRL's defaults (per_device_train_batch_size=8, num_generations=8, steps_per_generation =
        gradient_accumulation_steps = 1) put one prompt's 8 rollouts in a generation batch. GRPO is fine with that,
        but InfoNCE then has no other row to contrast with, and `moon-rl grpo` with no config would stop before its
        first step (`check_positives_possible`). Why this knob: every optimizer step still trains on
        per_device_train_batch_size rollouts (the same memory as TRL's defaults) and G stays TRL's 8; the second
        prompt reaches each micro-batch through `contrastive_bank`. With the term off nothing changes: the drop-in
        rule (the trainer is TRL's) covers the defaults too."""
        if self.contrastive_on and self.generation_batch_size == self.num_generations:
            self.steps_per_generation *= 2
            self.generation_batch_size *= 2

    @property
    def reward_specs(self) -> list[str]:
        return list(self.rewards) if self.rewards else list(DEFAULT_REWARDS)

    def _reward_weights(self) -> list[float] | None:
        """TRL's `reward_weights`, derived while the config is built from the `rewards` specs' `NAME=WEIGHT` (parsed,
        not resolved: no reward code is imported here), unless given explicitly; weights given both ways fail.
        Without `rewards` they stay as given (None: TRL weighs every reward function 1)."""
        from collections.abc import Mapping

        from reward_fns.registry import parse_spec

        if not self.rewards:  # the default rewards (all weight 1), or reward functions handed to the trainer itself
            return self.reward_weights
        specs = self.reward_specs
        weights = [spec.get("weight", 1.0) if isinstance(spec, Mapping) else parse_spec(spec)[2] for spec in specs]
        if self.reward_weights is None:
            return weights
        if any(w != 1.0 for w in weights):
            raise MoonError("reward weights are given twice: in the reward specs (NAME=WEIGHT) and in reward_weights; use one")
        if len(self.reward_weights) != len(specs):
            raise MoonError(f"reward_weights has {len(self.reward_weights)} values for {len(specs)} rewards {specs}")
        return list(self.reward_weights)


def build_grpo_configs(
    yaml_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    **flags: Any,
) -> tuple[MoonGRPOConfig, ModelArgs]:
    """(trainer config, model args) from a YAML file, `--set` overrides and flags; see `build_run_configs`."""
    return build_run_configs(MoonGRPOConfig, ModelArgs, yaml_path, overrides, flags, no_model_hint="pass --model PATH_OR_HUB_ID (or an SFT output) or set 'model:' in the --config file")
