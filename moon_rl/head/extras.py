"""Everything moon-rl adds to a policy model, in one container that is saved and loaded as a unit:
the embedding head, the optional modality fusion pooling and the optional residual enhancement.

`EmbeddingArgs` is a dataclass mixin shared by `MoonSFTConfig` and `MoonGRPOConfig` (one set of field
names for both trainers). `MoonExtras` is attached to the policy as the submodule `moon_extras`, so its
parameters are trained, wrapped by DDP and moved with the model like any other; trainers take it out
of the way when they save the base model (see `detached_extras`), and write it as
`moon_extras.safetensors` + `moon_extras.json` beside the adapter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from moon_rl.head.capture import peft_base, unwrap_model
from moon_rl.head.embedding import POOLINGS, EmbeddingHead, last_token_pool, mean_pool
from moon_rl.errors import MoonError
from moon_rl.head.fusion import ModalityFusion
from moon_rl.head.residual import FineGrainedResidual, find_decoder_layers

EXTRAS_WEIGHTS = "moon_extras.safetensors"
EXTRAS_CONFIG = "moon_extras.json"
ATTR = "moon_extras"


@dataclasses.dataclass
class EmbeddingArgs:
    """Fields of the contrastive embedding head and MOON3.0's add-ons (shared by the SFT and GRPO configs)."""

    contrastive_weight: float = dataclasses.field(
        default=0.1, metadata={"help": "Weight of the InfoNCE term added to the trainer's loss; 0 turns it off."}
    )
    embedding_dim: int = dataclasses.field(default=256, metadata={"help": "Output size of the embedding head."})
    pooling: str = dataclasses.field(
        default="mean",
        metadata={
            "help": "How hidden states become one vector: 'mean' over the reasoning span, 'last' token, 'fusion' (multi-head "
            "modality fusion), or 'input': the mean over the record's own text (title + brand/model number, no template, "
            "no reasoning) in a short forward of its own, the sentence-transformers path (text models)."
        },
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
        if self.embedding_dim <= 0 or self.fusion_heads <= 0:
            raise MoonError("embedding_dim and fusion_heads must be positive")

    def apply_runtime_defaults(self) -> None:
        """For a TrainingArguments subclass, before its own __post_init__: `report_to="auto"` means tensorboard
        when installed, else none; without CUDA, unset `bf16` means fp32 (TRL would pick bf16 and fail
        validation on a CPU); a multi-process launch without CUDA runs gloo data parallelism on the CPU."""
        import importlib.util
        import os

        if self.report_to == "auto":
            self.report_to = "tensorboard" if importlib.util.find_spec("tensorboard") is not None else "none"
        if not torch.cuda.is_available():
            if self.bf16 is None and not self.fp16:
                self.bf16 = False
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                self.use_cpu = True

    def configure_ddp_for_head(self) -> None:
        """For a TrainingArguments subclass: DDP's unused-parameter search walks back from the forward's outputs
        and never reaches the embedding head, which runs after the forward; it would mark the head ready as
        unused, then again when its gradient arrives ("marked as ready twice"). So the search is off while
        the head trains (every trainable parameter gets a gradient every step) and TRL's default otherwise."""
        if self.ddp_find_unused_parameters is None:
            self.ddp_find_unused_parameters = self.contrastive_weight == 0
        elif self.ddp_find_unused_parameters and self.contrastive_weight > 0 and self.world_size > 1:
            raise MoonError(
                "ddp_find_unused_parameters=true cannot be combined with the contrastive term under DDP (the embedding "
                "head runs after the model's forward); leave it unset, or use a DeepSpeed config (configs/accelerate/)"
            )

    def embedding_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(EmbeddingArgs)}


def model_dims(model: nn.Module) -> tuple[int, int]:
    """(hidden_size, num_decoder_layers) of the language model inside `model`."""
    base = peft_base(model)
    config = base.config
    text = getattr(config, "text_config", None) or config
    hidden = getattr(text, "hidden_size", None)
    if hidden is None:
        raise MoonError(f"cannot read hidden_size from {type(config).__name__}")
    return int(hidden), len(find_decoder_layers(base))


class MoonExtras(nn.Module):
    def __init__(self, hidden_size: int, num_layers: int, args: EmbeddingArgs | dict[str, Any], seed: int = 0):
        super().__init__()
        fields = args.embedding_fields() if isinstance(args, EmbeddingArgs) else dict(args)
        self.args = EmbeddingArgs(**fields)
        self.args.validate_embedding_args()
        self.hidden_size, self.num_layers, self.seed = hidden_size, num_layers, seed
        # nn.Linear draws default weights from the global RNG before ours overwrite them; fork it so that
        # adding the head never shifts LoRA init or sampling (equivalence with the unmodified TRL trainers).
        with torch.random.fork_rng(devices=[]):
            self.head = EmbeddingHead(hidden_size, self.args.embedding_dim, seed=seed)
            self.fusion = ModalityFusion(hidden_size, self.args.fusion_heads, seed=seed + 1) if self.args.pooling == "fusion" else None
            self.residual = (
                FineGrainedResidual(hidden_size, num_layers, self.args.residual_source_layer, self.args.residual_target_layers)
                if self.args.residual_enhancement
                else None
            )

    def pool(self, hidden: torch.Tensor, masks: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """hidden (B, L, H) -> pooled (B, H). `masks["reasoning"]` selects the span for mean/last pooling."""
        info: dict[str, float] = {}
        if self.args.pooling == "mean":
            pooled = mean_pool(hidden, masks["reasoning"])
        elif self.args.pooling == "input":  # a plain-text forward of its own (`embedding.backbone_hidden`)
            pooled = mean_pool(hidden, masks["text"])
        elif self.args.pooling == "last":
            pooled = last_token_pool(hidden, masks["reasoning"])
        else:
            pooled, gate = self.fusion(hidden, masks)
            info = {f"fusion_gate/{k}": v for k, v in self.fusion.modality_weights(gate).items()}
        return pooled, info

    def embed(self, hidden: torch.Tensor, masks: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """hidden (B, L, H) -> L2-normalised embeddings (B, embedding_dim) and loggable gate values.

        A row with no token to pool (mean/last pooling of an empty reasoning span: every completion masked
        as truncated, say) gets an all-zero embedding, not the head's bias direction shared by all such rows;
        the contrastive loss leaves zero rows out (`moon_rl.head.losses.group_info_nce`)."""
        pooled, info = self.pool(hidden, masks)
        if self.residual is not None:
            for layer, norm in zip(self.residual.target_layers, self.residual.gate_norms()):
                info[f"residual_gate_norm/layer{layer}"] = norm
        embeddings = self.head(pooled)  # (B, D)
        span = {"fusion": masks["reasoning"] | masks["image"] | masks["text"], "input": masks["text"]}.get(self.args.pooling, masks["reasoning"])
        empty = ~span.bool().any(dim=1)  # (B,)
        if bool(empty.any()):
            embeddings = embeddings.masked_fill(empty[:, None], 0.0)
        return embeddings, info

    def config_dict(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "seed": self.seed, **self.args.embedding_fields()}

    @classmethod
    def for_model(cls, model: nn.Module, args: EmbeddingArgs, seed: int = 0) -> MoonExtras:
        hidden, layers = model_dims(model)
        extras = cls(hidden, layers, args, seed=seed)
        dtype = next(peft_base(model).parameters()).dtype
        # Keep the add-ons in fp32 unless the model is fp32 anyway; their outputs are cast where they meet the model.
        return extras.to(device=next(peft_base(model).parameters()).device, dtype=torch.float32 if dtype != torch.float32 else dtype)


def modality_masks(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    reasoning_mask: torch.Tensor,
    image_token_id: int | None = None,
) -> dict[str, torch.Tensor]:
    """Boolean (B, L) masks: image tokens, prompt text tokens, reasoning (completion) tokens."""
    attn = attention_mask.bool()
    reasoning = reasoning_mask.bool() & attn
    image = (input_ids == image_token_id) & attn if image_token_id is not None else torch.zeros_like(attn)
    text = attn & ~reasoning & ~image
    return {"image": image, "text": text, "reasoning": reasoning}


def image_token_id_of(model: nn.Module) -> int | None:
    config = peft_base(model).config
    return getattr(config, "image_token_id", None) or getattr(config, "image_token_index", None)


# ---- attach / detach / save / load -------------------------------------------------------------


def attach_extras(model: nn.Module, extras: MoonExtras) -> MoonExtras:
    """Make `extras` a submodule of `model` (trained and moved with it) and hook the residual module in."""
    target = unwrap_model(model)
    previous = target._modules.get(ATTR)
    if previous is not None and previous.residual is not None:
        previous.residual.detach()  # never leave a stale module's hooks on the layers
    setattr(target, ATTR, extras)
    if extras.residual is not None:
        extras.residual.attach(peft_base(model))
    return extras


def get_extras(model: nn.Module) -> MoonExtras | None:
    return getattr(unwrap_model(model), ATTR, None) if ATTR in unwrap_model(model)._modules else None


@contextlib.contextmanager
def detached_extras(model: nn.Module):
    """Temporarily remove `moon_extras` so `save_pretrained` of the model (full fine-tuning) or of vLLM weight
    sync never sees parameters the base architecture does not have. Residual hooks stay in place."""
    target = unwrap_model(model)
    extras = target._modules.pop(ATTR, None)
    try:
        yield extras
    finally:
        if extras is not None:
            target._modules[ATTR] = extras


@contextlib.contextmanager
def residual_suspended(model: nn.Module):
    """Run `model` without the residual module's hooks: the reference pass of a PEFT policy (adapters disabled)
    must be the initial model, and the residual starts as the identity (zero gates) but trains."""
    extras = get_extras(model)
    residual = extras.residual if extras is not None else None
    if residual is None:
        yield
        return
    residual.detach()
    try:
        yield
    finally:
        residual.attach(peft_base(model))


def save_extras(extras: MoonExtras, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in extras.state_dict().items()}
    save_file(state, str(out_dir / EXTRAS_WEIGHTS))
    (out_dir / EXTRAS_CONFIG).write_text(json.dumps(extras.config_dict(), indent=2) + "\n", encoding="utf-8")


def has_extras(path: str | Path) -> bool:
    return (Path(path) / EXTRAS_WEIGHTS).is_file() and (Path(path) / EXTRAS_CONFIG).is_file()


def load_extras(path: str | Path, device: torch.device | str | None = None) -> MoonExtras:
    path = Path(path)
    if not has_extras(path):
        raise MoonError(f"{path}: no {EXTRAS_WEIGHTS} / {EXTRAS_CONFIG}; is this a moon-rl checkpoint or export?")
    cfg = json.loads((path / EXTRAS_CONFIG).read_text(encoding="utf-8"))
    hidden, layers, seed = cfg.pop("hidden_size"), cfg.pop("num_layers"), cfg.pop("seed", 0)
    known = {f.name for f in dataclasses.fields(EmbeddingArgs)}
    extras = MoonExtras(hidden, layers, {k: v for k, v in cfg.items() if k in known}, seed=seed)
    state = load_file(str(path / EXTRAS_WEIGHTS))
    try:
        missing, unexpected = extras.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch between the weights and moon_extras.json
        raise MoonError(f"{path / EXTRAS_WEIGHTS}: weights do not match {EXTRAS_CONFIG}: {err}") from None
    if missing or unexpected:
        raise MoonError(f"{path / EXTRAS_WEIGHTS}: weights do not match {EXTRAS_CONFIG} (missing {missing}, unexpected {unexpected})")
    return extras.to(device) if device is not None else extras


def load_extras_into(model: nn.Module, path: str | Path) -> MoonExtras:
    """Load saved extras and check they fit `model` (hidden size, layer count) before attaching them."""
    extras = load_extras(path)
    hidden, layers = model_dims(model)
    if (extras.hidden_size, extras.num_layers) != (hidden, layers):
        raise MoonError(
            f"{path}: embedding head was trained for hidden_size={extras.hidden_size}, {extras.num_layers} layers, "
            f"but the model has hidden_size={hidden}, {layers} layers: wrong base model for this checkpoint"
        )
    device = next(peft_base(model).parameters()).device
    return attach_extras(model, extras.to(device))
