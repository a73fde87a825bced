"""`EmbeddingArgs`: the fields of the contrastive embedding head and MOON3.0's add-ons, a dataclass mixin shared
by `MoonSFTConfig` and `MoonGRPOConfig` (one set of field names for both trainers), and saved with the head
(`moon_extras.json`) so a checkpoint knows how it pools."""

from __future__ import annotations

import dataclasses
from typing import Any

from moon_rl.errors import MoonError
from moon_rl.head.pooling import POOLINGS


@dataclasses.dataclass
class EmbeddingArgs:
    """Fields of the contrastive embedding head and MOON3.0's add-ons (shared by the SFT and GRPO configs)."""

    contrastive_weight: float = dataclasses.field(
        default=0.1, metadata={"help": "Weight of the InfoNCE term added to the trainer's loss; 0 turns it off."}
    )
    embedding_dim: int | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Output size of a linear projection after pooling; None (default): no projection, the pooled hidden "
            "state itself (the model's hidden size), L2-normalised."
        },
    )
    pooling: str = dataclasses.field(
        default="mean",
        metadata={
            "help": "How hidden states become one vector: 'mean' over the reasoning span, 'last' token, 'fusion' (multi-head "
            "modality fusion), or 'input': the mean over the record's own text (title + brand/model number, no template, "
            "no reasoning) in a short forward of its own, the sentence-transformers path (text models); 'reasoning': the "
            "model first writes its attribute reasoning after the record's text, and the vector is the mean over text + "
            "reasoning; 'reasoning_token': the state of the token that ends the reasoning (UME-R1's embedding token)."
        },
    )
    input_contrastive_weight: float = dataclasses.field(
        default=1.0,
        metadata={
            "help": "Poolings 'reasoning' / 'reasoning_token': weight of a second InfoNCE term on the no-reasoning vector "
            "(the mean over the record's text span of the same forward, what pooling 'input' serves), so one run serves "
            "a cheap index and a reasoning-aware one; 0 trains the reasoning vector only."
        },
    )
    max_reasoning_tokens: int = dataclasses.field(
        default=32,
        metadata={"help": "Poolings 'reasoning' / 'reasoning_token': most tokens of reasoning trained on and generated at encode time."},
    )
    # Not `temperature`: GRPOConfig already uses that name for the sampling temperature.
    contrastive_temperature: float = dataclasses.field(default=0.05, metadata={"help": "InfoNCE softmax temperature."})
    hard_negatives_by: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Dataset column (e.g. 'category') whose equal values are batched together, so in-batch negatives "
            "are products of the same kind that differ in fine-grained attributes; default: batches mix everything."
        },
    )
    fusion_heads: int = dataclasses.field(default=4, metadata={"help": "Learned query heads per modality when pooling='fusion'."})
    residual_enhancement: bool = dataclasses.field(
        default=False, metadata={"help": "Feed early-layer token features into later layers through zero-initialised gates."}
    )
    residual_source_layer: int = dataclasses.field(default=0, metadata={"help": "Shallow decoder layer whose output is carried forward."})
    residual_target_layers: list[int] | None = dataclasses.field(
        default=None, metadata={"help": "Decoder layers that receive the gated residual (default: the last one)."}
    )

    def validate_embedding_args(self) -> None:
        if self.pooling not in POOLINGS:
            raise MoonError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.contrastive_weight < 0:
            raise MoonError(f"contrastive_weight must be >= 0, got {self.contrastive_weight}")
        if self.contrastive_temperature <= 0:
            raise MoonError(f"contrastive_temperature must be > 0, got {self.contrastive_temperature}")
        if self.input_contrastive_weight < 0 or self.max_reasoning_tokens <= 0:
            raise MoonError(
                f"input_contrastive_weight must be >= 0 and max_reasoning_tokens positive, got {self.input_contrastive_weight} "
                f"and {self.max_reasoning_tokens}"
            )
        if (self.embedding_dim is not None and self.embedding_dim <= 0) or self.fusion_heads <= 0:
            raise MoonError("embedding_dim must be positive or null (no projection), and fusion_heads positive")

    @property
    def contrastive_on(self) -> bool:
        """The one place that decides whether the InfoNCE term is on."""
        return self.contrastive_weight > 0

    def embedding_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(EmbeddingArgs)}
