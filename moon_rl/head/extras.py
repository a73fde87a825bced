"""Everything moon-rl adds to a policy model, in one container that is saved and loaded as a unit:
the embedding head, the optional modality fusion pooling and the optional residual enhancement, built from
`EmbeddingArgs` (`moon_rl/head/args.py`). `MoonExtras` is attached to the policy as the submodule `moon_extras`, so its
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
from moon_rl.head.args import EmbeddingArgs
from moon_rl.head.pooling import pool, pooled_span
from moon_rl.head.projection import EmbeddingHead
from moon_rl.errors import MoonError
from moon_rl.head.fusion import ModalityFusion
from moon_rl.head.residual import FineGrainedResidual, find_decoder_layers

EXTRAS_WEIGHTS = "moon_extras.safetensors"
EXTRAS_CONFIG = "moon_extras.json"
ATTR = "moon_extras"


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

    def embed(self, hidden: torch.Tensor, masks: dict[str, torch.Tensor], mode: str | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """hidden (B, L, H) -> L2-normalised embeddings (B, embedding_dim) and loggable gate values; pooled by the
        table in `moon_rl.head.pooling` (masks name the image / text / reasoning tokens) with the head's pooling, or
        `mode` (a reasoning head's no-reasoning vector: "input" over the same forward's text span).

        A row with no token to pool (mean/last pooling of an empty reasoning span: every completion masked
        as truncated, say) gets an all-zero embedding, not the head's bias direction shared by all such rows;
        the contrastive loss leaves zero rows out (`moon_rl.head.losses.group_info_nce`)."""
        mode = mode or self.args.pooling
        pooled, info = pool(mode, hidden, masks, fusion=self.fusion)
        if self.residual is not None:
            for layer, norm in zip(self.residual.target_layers, self.residual.gate_norms()):
                info[f"residual_gate_norm/layer{layer}"] = norm
        embeddings = self.head(pooled)  # (B, D)
        empty = ~pooled_span(mode, masks).any(dim=1)  # (B,)
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


def save_extras(extras: MoonExtras, out_dir: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Write `extras` to `out_dir`; `state`, where given, replaces its own tensors (the full ones gathered from
    a sharded model: under FSDP2 / ZeRO-3 the live parameters are this process's shard)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in (state if state is not None else extras.state_dict()).items()}
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
