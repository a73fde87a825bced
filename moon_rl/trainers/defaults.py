"""`RuntimeDefaults`: what both trainer configs (`MoonSFTConfig`, `MoonGRPOConfig`) settle about the machine
while they are built, in their `__post_init__` (never later: a built config is not changed at run time)."""

from __future__ import annotations

import torch

from moon_rl.errors import MoonError


class RuntimeDefaults:
    """Mixin for a TrainingArguments subclass that also has `EmbeddingArgs`' fields."""

    def apply_runtime_defaults(self) -> None:
        """For a TrainingArguments subclass, before its own __post_init__: `report_to="auto"` means tensorboard
        when installed, else none; without CUDA, unset `bf16` means fp32 (TRL would pick bf16 and fail
        validation on a CPU) and no pinned memory (it only speeds host-to-GPU copies; torch ignores it with a warning on
        every DataLoader); a multi-process launch without CUDA runs gloo data parallelism on the CPU."""
        import importlib.util
        import os

        if self.report_to == "auto":
            self.report_to = "tensorboard" if importlib.util.find_spec("tensorboard") is not None else "none"
        if not torch.cuda.is_available():
            if self.bf16 is None and not self.fp16:
                self.bf16 = False
            self.dataloader_pin_memory = False
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                self.use_cpu = True

    def configure_ddp_for_head(self) -> None:
        """For a TrainingArguments subclass: DDP's unused-parameter search walks back from the forward's outputs
        and never reaches the embedding head, which runs after the forward; it would mark the head ready as
        unused, then again when its gradient arrives ("marked as ready twice"). So the search is off while
        the head trains (every trainable parameter gets a gradient every step) and TRL's default otherwise."""
        if self.ddp_find_unused_parameters is None:
            self.ddp_find_unused_parameters = not self.contrastive_on
        elif self.ddp_find_unused_parameters and self.contrastive_on and self.world_size > 1:
            raise MoonError(
                "ddp_find_unused_parameters=true cannot be combined with the contrastive term under DDP (the embedding "
                "head runs after the model's forward); leave it unset, or use a DeepSpeed config (configs/accelerate/)"
            )
