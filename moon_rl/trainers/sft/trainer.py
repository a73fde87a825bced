"""`MoonSFTTrainer`: TRL's `SFTTrainer` plus an in-batch InfoNCE term on embeddings of the same forward pass.

    loss = nll + contrastive_weight * InfoNCE(head(pool(hidden states of the completion)), positives = same group_id)

The next-token loss is TRL's, computed exactly as `SFTTrainer` computes it (fused LM head); the hidden states
come from a forward hook on the backbone during that same forward (`moon_rl.head.capture.HiddenStateCapture`),
so there is no second pass. The embedding head (`moon_rl.head.extras.MoonExtras`) is a submodule of the policy,
trained by the same optimizer, and saved as `moon_extras.*` beside the adapter in every checkpoint.

With `contrastive_weight=0` and both MOON3.0 modules off, no add-on is attached at all
(`moon_rl.trainers.common.extras_needed`), no `id`/`group_id` column is needed, TRL's collator and sampler are kept,
and training is step-for-step identical to `trl.SFTTrainer` (tests/moon_rl/test_sft.py checks the logged
losses and updated weights). With the term off but a module on, the head is attached frozen (saved as built)
and the residual module, part of the forward, trains; a saved head (`extras_dir`) is carried through frozen.

Overridden methods (everything else is TRL's):
- `__init__`: builds a default `MoonSFTConfig` for `args=None` as TRL does; with the term on, checks the id
  columns, refuses a batch shape or dataset in which no row has a positive, and wraps TRL's data collator so
  `id`/`group_id` travel as hashed tensors; attaches the add-ons (if any) after TRL has wrapped the model
  with PEFT (PEFT would otherwise freeze them).
- `_set_signature_columns_if_needed`: with the term on, keeps the `id` and `group_id` columns (and the
  `hard_negatives_by` column), which HF `Trainer` would drop with `remove_unused_columns=True` (not
  arguments of `model.forward`).
- `_get_train_sampler`: group-aware order (`moon_rl.trainers.sampling`) so that positives share a batch.
- `compute_loss`: logs `nll` (TRL's loss, the one extra metric with the term off); with the term on, pops the
  id tensors, runs the parent inside the hidden-state capture, then adds the weighted contrastive term *after*
  the parent has returned (it has one exit; nothing can skip the term), and logs `contrastive_loss` and
  `retrieval_accuracy` through TRL's `_metrics`. With `next_token_weight=0` (pooling "input") the parent is not
  called at all: the step is the short forward over each row's own text and the InfoNCE term, as a plain
  contrastive loop runs it. With pooling `reasoning` / `reasoning_token` the parent is not called either: one forward
  over the row's text + cue + gold reasoning + end (`moon_rl.head.reasoning`, the layout `encode` serves), whose
  states give the next-token NLL on the reasoning, the vector read after it and the no-reasoning vector (the text
  span), each vector with its InfoNCE term (`_reasoning_loss`).
Save/load of the head with checkpoints comes from `moon_rl.trainers.common.MoonTrainerMixin`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from trl import SFTTrainer

from moon_rl.errors import MoonError
from moon_rl.head.capture import HiddenStateCapture, peft_base
from moon_rl.head.contrastive import contrastive_term, log_contrastive
from moon_rl.head.extras import image_token_id_of
from moon_rl.head.ids import EMBED_IDS_KEY, EMBED_MASK_KEY, GROUP_KEY, ID_COLUMNS, LAYOUT_PREFIX, ROW_KEY, TEXT_COLUMNS
from moon_rl.head.pooling import REASONING_POOLINGS, input_masks, modality_masks
from moon_rl.head.reasoning import layout_masks, next_token_nll
from moon_rl.head.text import backbone_hidden
from moon_rl.trainers.common import MoonTrainerMixin, attach_for_training, check_contrastive_data, default_run_name
from moon_rl.trainers.sampling import GroupedSampler, batch_clusters
from moon_rl.trainers.sft.collator import MoonCollator
from moon_rl.trainers.sft.config import MoonSFTConfig


class MoonSFTTrainer(MoonTrainerMixin, SFTTrainer):
    """SFTTrainer + contrastive embedding head. Args are SFTTrainer's, plus `extras_dir`: a saved head
    (`moon_extras.*`, e.g. from an earlier moon-rl run) to continue from instead of a fresh one."""

    _tag_names = ["trl", "sft", "moon-rl"]

    def __init__(self, model, args: MoonSFTConfig | None = None, *pos: Any, extras_dir: str | None = None, **kwargs: Any):
        if args is None:  # as TRL does: a default config named after the model, with moon-rl's defaults
            args = MoonSFTConfig(output_dir=f"{default_run_name(model)}-SFT")
        if not isinstance(args, MoonSFTConfig):
            raise MoonError(
                f"MoonSFTTrainer needs a MoonSFTConfig, got {type(args).__name__}: it takes every SFTConfig field; "
                "MoonSFTConfig(..., contrastive_weight=0) trains exactly like trl.SFTTrainer"
            )
        super().__init__(model, args, *pos, **kwargs)
        if self.contrastive_on:
            rows = self.args.per_device_train_batch_size * self.args.world_size
            hint = f"rows per batch = per_device_train_batch_size x processes ({rows}): raise per_device_train_batch_size"
            check_contrastive_data(self, "sft", rows, hint, input_pooling=self._own_forward())
            embed_tokenizer = self.processing_class if self._own_forward() else None
            reasoning_tokens = self.args.max_reasoning_tokens if self.args.pooling in REASONING_POOLINGS else None
            self.data_collator = MoonCollator(self.data_collator, drop=self._sampler_columns(), embed_tokenizer=embed_tokenizer, reasoning_tokens=reasoning_tokens)
        # After PEFT wrapping (inside super), so the head stays trainable; nothing at all with the term off.
        attach_for_training(self.model, self.args, self.args.seed, extras_dir)


    # ---- data -------------------------------------------------------------------------------------

    def _own_forward(self) -> bool:
        """Poolings whose forward is moon-rl's own over the row's text ("input"; the reasoning layout), not TRL's."""
        return self.args.pooling == "input" or self.args.pooling in REASONING_POOLINGS

    def _sampler_columns(self) -> tuple[str, ...]:
        column = self.args.hard_negatives_by
        return (column,) if column and column not in ID_COLUMNS else ()

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if not self.contrastive_on:
            return
        text = TEXT_COLUMNS if self._own_forward() else ()
        self._signature_columns = list(dict.fromkeys([*self._signature_columns, *ID_COLUMNS, *self._sampler_columns(), *text]))

    def _get_train_sampler(self, train_dataset=None):
        if not self.contrastive_on:
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if "group_id" not in getattr(dataset, "column_names", []):
            raise MoonError("the training dataset has no 'group_id' column; the contrastive loss needs it (or set contrastive_weight=0)")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        clusters = batch_clusters(dataset, self.args.hard_negatives_by)
        return GroupedSampler(dataset["group_id"], self._train_batch_size, seed=seed, clusters=clusters)

    # ---- loss -------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = self.args.next_token_weight
        if not self.contrastive_on:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            self._log_nll(result[0] if return_outputs else result, num_items_in_batch)
            if weight == 1.0:
                return result
            return (result[0] * weight, result[1]) if return_outputs else result * weight
        group_ids, row_ids = inputs.pop(GROUP_KEY, None), inputs.pop(ROW_KEY, None)
        if group_ids is None:
            raise MoonError("batch has no group ids: the dataset needs 'id' and 'group_id' columns for the contrastive loss")
        if self.args.pooling in REASONING_POOLINGS:
            return self._reasoning_loss(model, inputs, group_ids, row_ids, return_outputs, num_items_in_batch)
        labels, input_ids, attention_mask = inputs["labels"], inputs["input_ids"], inputs["attention_mask"]
        embed = {"input_ids": inputs.pop(EMBED_IDS_KEY, None), "attention_mask": inputs.pop(EMBED_MASK_KEY, None)}

        # Training forwards run with grad; evaluation runs under no_grad, so capture those too there.
        # Pooling "input" embeds the rows' plain text in a short forward of its own instead (see moon_rl.head.text).
        capturing = self.args.pooling != "input"
        if weight == 0:  # contrastive only: no forward over prompt + trace at all (config: pooling "input")
            loss, outputs = None, None
            self._count_tokens(embed["attention_mask"])
        else:
            with HiddenStateCapture(model, capture_no_grad=not torch.is_grad_enabled()) if capturing else contextlib.nullcontext() as capture:
                result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = (result if return_outputs else (result, None))
            self._log_nll(loss, num_items_in_batch)
            loss = loss if weight == 1.0 else loss * weight

        if not capturing:
            if embed["input_ids"] is None:
                raise RuntimeError("pooling 'input' but the batch carries no embedding text; the collator was replaced")
            hidden = backbone_hidden(model, embed)  # (B, L_text, H), with grad
            masks = input_masks(embed["attention_mask"])
        else:
            if not capture.chunks:
                raise RuntimeError("the backbone forward was not captured; cannot compute the contrastive loss")
            hidden = capture.chunks[0]  # the loss forward; later no-grad forwards only feed TRL's metrics
            # The completion (reasoning trace) is where labels are kept; with completion_only_loss it is exactly that.
            masks = modality_masks(input_ids, attention_mask, labels != -100, image_token_id_of(model))
        if hidden.size(0) != group_ids.size(0):
            raise RuntimeError(f"embedded {hidden.size(0)} rows but the batch has {group_ids.size(0)} group ids")
        term = contrastive_term(
            self.moon_extras(), hidden, masks, group_ids.to(hidden.device), row_ids.to(hidden.device), self.args.contrastive_temperature
        )
        # Same scaling as TRL's MoE aux loss: with `num_items_in_batch`, Trainer leaves gradient accumulation
        # to the loss, so a per-micro-batch mean must be averaged over the accumulation steps here.
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        contrastive = self.args.contrastive_weight * term.loss / steps
        loss = contrastive if loss is None else loss + contrastive.to(loss.dtype)
        log_contrastive(self._metrics[self._mode()], self.accelerator, term)
        return (loss, outputs) if return_outputs else loss

    def _reasoning_loss(self, model, inputs, group_ids, row_ids, return_outputs, num_items_in_batch):
        """The reasoning poolings: one forward over text + cue + gold reasoning + end (`moon_rl.head.reasoning`),
        next-token NLL on the reasoning and end tokens, InfoNCE on the vector read after the reasoning and, with
        `input_contrastive_weight`, on the no-reasoning vector (the text span of the same forward). TRL's forward over
        its chat prompt + completion is not run: the layout is the one `encode` serves."""
        layout = {k[len(LAYOUT_PREFIX):]: inputs.pop(k) for k in list(inputs) if k.startswith(LAYOUT_PREFIX)}
        if "input_ids" not in layout:
            raise RuntimeError(f"pooling {self.args.pooling!r} but the batch carries no reasoning layout; the collator was replaced")
        self._count_tokens(layout["attention_mask"])
        hidden = backbone_hidden(model, layout)  # (B, L, H), with grad
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        loss = hidden.new_zeros(())
        if self.args.next_token_weight > 0:
            nll = next_token_nll(hidden, layout["input_ids"], layout["targets"], peft_base(model).get_output_embeddings())
            self._metrics[self._mode()]["nll"].append(self.accelerator.gather_for_metrics(nll.detach().float().reshape(1)).mean().item())
            loss = loss + self.args.next_token_weight * nll / steps
        groups, rows, temperature = group_ids.to(hidden.device), row_ids.to(hidden.device), self.args.contrastive_temperature
        masks = layout_masks(layout)
        term = contrastive_term(self.moon_extras(), hidden, masks, groups, rows, temperature)
        loss = loss + self.args.contrastive_weight * term.loss / steps
        log_contrastive(self._metrics[self._mode()], self.accelerator, term)
        if self.args.input_contrastive_weight > 0:
            plain = contrastive_term(self.moon_extras(), hidden, masks, groups, rows, temperature, mode="input")
            loss = loss + self.args.input_contrastive_weight * plain.loss / steps
            log_contrastive(self._metrics[self._mode()], self.accelerator, plain, prefix="input/")
        return (loss, None) if return_outputs else loss

    # ---- metrics ----------------------------------------------------------------------------------

    def _mode(self) -> str:
        return "train" if self.model.training else "eval"

    def _count_tokens(self, attention_mask: torch.Tensor) -> None:
        """TRL's `num_tokens` (tokens trained on so far) when its own forward is skipped: the embedded text's tokens."""
        if self._mode() == "train":
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(attention_mask.sum().reshape(1)).sum().item())
        self._metrics[self._mode()]["num_tokens"] = [self._total_train_tokens]

    def _log_nll(self, loss: torch.Tensor, num_items_in_batch) -> None:
        """The parent's loss as a per-step mean: undo its split over accumulation steps. Its split over processes
        (`num_items_in_batch` counts every rank's tokens) TRL undoes itself: with `average_tokens_across_devices`
        it multiplies by `num_processes // get_tp_size()`, so the value is already this process's token mean."""
        value = loss.detach().float()
        if num_items_in_batch is not None:
            value = value * self.current_gradient_accumulation_steps
        self._metrics[self._mode()]["nll"].append(self.accelerator.gather_for_metrics(value.reshape(1)).mean().item())
