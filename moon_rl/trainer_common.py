"""What the moon-rl trainers (SFT and GRPO) share: the embedding add-ons on the policy, the contrastive
term computed from captured hidden states, and saving/loading the add-ons with every checkpoint.

`MoonTrainerMixin` goes *before* the TRL trainer in the bases (`class MoonSFTTrainer(MoonTrainerMixin,
SFTTrainer)`). It overrides, and only extends:
- `_save`: writes the base model / adapter with the add-ons detached (so a full fine-tune's
  `save_pretrained` never contains weights the architecture lacks), then `moon_extras.*` beside it.
- `_load_from_checkpoint`: the same in reverse on `--resume`.
- `_save_checkpoint`: after the parent has written everything, marks the checkpoint complete
  (`moon_rl/checkpoints.py`), so `--resume` never picks a folder that a crash left half-written.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from moon_rl.checkpoints import mark_complete
from moon_rl.distributed import gather_with_grad
from moon_rl.extras import (
    EmbeddingArgs,
    MoonExtras,
    attach_extras,
    detached_extras,
    get_extras,
    has_extras,
    load_extras,
    save_extras,
)
from moon_rl.losses import ContrastiveStats, group_info_nce


def setup_extras(model: nn.Module, args: EmbeddingArgs, seed: int, extras_dir: str | Path | None = None) -> MoonExtras:
    """Attach fresh add-ons built from `args`, or the saved ones from `extras_dir` (a moon-rl output)."""
    if extras_dir is not None:
        from moon_rl.extras import load_extras_into

        return load_extras_into(model, extras_dir)
    return attach_extras(model, MoonExtras.for_model(model, args, seed=seed))


def contrastive_loss(
    extras: MoonExtras,
    hidden: torch.Tensor,
    masks: dict[str, torch.Tensor],
    group_ids: torch.Tensor,
    row_ids: torch.Tensor,
    temperature: float,
    gather: bool = True,
) -> tuple[torch.Tensor, ContrastiveStats, dict[str, float]]:
    """Embed the local batch and score it against the batch gathered from every process (with gradient)."""
    embeddings, info = extras.embed(hidden, masks)  # (B, D)
    if gather:
        all_emb, all_groups, all_rows = gather_with_grad(embeddings, group_ids, row_ids)
    else:
        all_emb, all_groups, all_rows = embeddings, group_ids, row_ids
    loss, stats = group_info_nce(
        embeddings, group_ids, row_ids, temperature, candidates=all_emb, candidate_group_ids=all_groups, candidate_row_ids=all_rows
    )
    return loss, stats, info


class MoonTrainerMixin:
    """Save/load of the add-ons with the model; see module docstring."""

    def moon_extras(self) -> MoonExtras | None:
        return get_extras(self.model)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if state_dict is not None:
            state_dict = {k: v for k, v in state_dict.items() if ".moon_extras." not in f".{k}"}
        with detached_extras(self.model) as extras:
            super()._save(output_dir, state_dict=state_dict)
        if extras is not None and self.args.should_save:
            save_extras(extras, output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        with detached_extras(self.model):
            super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        extras = self.moon_extras()
        if extras is not None and has_extras(resume_from_checkpoint):
            saved = load_extras(resume_from_checkpoint)
            extras.load_state_dict(saved.state_dict())

    def _save_checkpoint(self, model: nn.Module, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            if os.path.isdir(folder):
                mark_complete(folder, self.state.global_step)
