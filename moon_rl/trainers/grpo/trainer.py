"""`MoonGRPOTrainer`: TRL's `GRPOTrainer` plus an in-batch InfoNCE term on embeddings of the same forward.

    loss = GRPO policy loss (any TRL loss_type) + contrastive_weight * InfoNCE(head(pool(hidden states)))

The policy loss is TRL's, untouched. The hidden states come from a forward hook on the backbone during the
one forward TRL runs for the per-token log-probs (`moon_rl.head.capture.HiddenStateCapture`), so the contrastive
term costs no second pass. Positives are rollouts of rows that share a `group_id` (another view of the
product, a query that found it); rollouts of the same row are neither positives nor negatives; negatives
are every other rollout in the batch, gathered across processes with gradient.

With `contrastive_weight=0`, both MOON3.0 modules off and no reward reading embeddings, no add-on is attached
at all (`moon_rl.trainers.common.extras_needed`): no extra parameters, optimizer state, forward work or saved files,
no `id`/`group_id` columns needed, and training is step-for-step TRL's (tests/moon_rl/test_grpo_equivalence.py
compares losses, log-probs, gradients and updated weights). With the term off but `residual_enhancement` on,
only the residual module trains (it is part of the forward); the head is attached frozen and saved as built.
A saved head (`extras_dir`) is carried through frozen when the term is off.

Overridden methods (everything else is TRL's), and why:
- `__init__`: builds a default `MoonGRPOConfig` for `args=None` as TRL does; checks the vLLM extra up front,
  hands `embeddings` to rewards that need them, attaches the add-ons (if any) after TRL has wrapped the model
  with PEFT, swaps TRL's ref-model sync callback for one that sees the backbone only
  (`moon_rl.trainers.common.BackboneSyncRefModelCallback`: TRL zips policy and reference parameters), and, with the
  term on, checks the id columns and refuses a batch shape or dataset in which no rollout has a positive
  (warns for a shuffled iterable dataset, which the group-aware sampler cannot order).
- `_get_train_sampler`: TRL's `RepeatSampler` with a group-aware order (`moon_rl.trainers.sampling.GroupRepeatSampler`),
  so the members of a group land in the same generation batch (and, with `hard_negatives_by`, groups of
  one category share it).
- `_generate`: works around TRL building `images=[..., None, ...]` for a batch that mixes rows with and
  without images (query rows), which the processor rejects; records what was generated for
  `rollout_embeddings`.
- `_generate_single_turn`: vLLM weight sync must not see the `moon_extras` parameters (the base
  architecture has no such weights), so they are detached around it. Untested here (no GPU); minimal. On
  transformers' generate, while the term trains, the LoRA adapter is merged for the rollouts and the base weights
  restored exactly afterwards (`moon_rl.models.merged_lora`, `merged_rollouts`): 15-20 % of a CPU rollout was
  the adapter's own small matmuls.
- `_get_per_token_logps_and_entropies`: runs TRL's reference pass of a PEFT policy (adapters disabled) without
  the residual module's hooks, so the reference stays the initial model; when rollout embeddings are wanted, captures the hidden states of
  TRL's own no-grad policy pass instead of running another (see `rollout_embeddings`); and runs a batch
  chunk by chunk when one of TRL's chunks would hold no image (TRL would hand Qwen-VL an empty
  `pixel_values`; query rows make such batches common).
- `_generate_and_score_completions`: attaches hashed `group_id` / `id` and a rollout uid to every rollout,
  so group membership survives TRL's shuffle and split into micro-batches; builds the candidate bank.
- `_compute_loss`: runs the parent inside the capture, then adds the weighted contrastive term *after*
  the parent has returned (one exit, whatever the loss_type: TRL issue 7009), and logs it.
Save/load of the head and modules with every checkpoint comes from `MoonTrainerMixin`.

Departure from TRL: with vLLM, rollouts come from the merged base architecture, which has no residual
module; TRL's importance-sampling correction (on by default) accounts for that gap like any other.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from accelerate.utils import is_peft_model
from trl import GRPOTrainer

from moon_rl.errors import MoonError
from moon_rl.head.capture import HiddenStateCapture, unwrap_model
from moon_rl.head.contrastive import CandidateBank, contrastive_term, log_contrastive
from moon_rl.head.extras import detached_extras, get_extras, image_token_id_of, residual_suspended
from moon_rl.head.ids import EMBED_IDS_KEY, EMBED_MASK_KEY, GROUP_KEY, ID_COLUMNS, LAYOUT_PREFIX, ROW_KEY, UID_KEY, id_tensors
from moon_rl.head.pooling import REASONING_POOLINGS, completion_mask_of, input_masks, modality_masks
from moon_rl.head.reasoning import layout_masks, reasoning_layout
from moon_rl.head.text import backbone_hidden
from moon_rl.models.merged_lora import merged_lora
from moon_rl.head.text import backbone_hidden_distinct, record_texts, tokenize_texts
from moon_rl.trainers.common import MoonTrainerMixin, attach_for_training, check_contrastive_data, default_run_name, use_backbone_only_ref_sync
from moon_rl.trainers.grpo.config import MoonGRPOConfig
from moon_rl.trainers.grpo.rollout_embeddings import (
    ScoringPass,
    image_safe_chunks,
    needs_embeddings,
    rollout_forward_inputs,
    with_embeddings,
)
from moon_rl.trainers.sampling import GroupRepeatSampler, batch_clusters


class MoonGRPOTrainer(MoonTrainerMixin, GRPOTrainer):
    """GRPOTrainer + contrastive embedding head. Args are GRPOTrainer's (with a `MoonGRPOConfig`), plus
    `extras_dir`: a saved head (`moon_extras.*`, e.g. an SFT output) to continue from instead of a fresh one."""

    _tag_names = ["trl", "grpo", "moon-rl"]

    def __init__(self, model, reward_funcs=None, args: MoonGRPOConfig | None = None, *pos: Any, extras_dir: str | None = None, **kwargs: Any):
        if args is None:  # as TRL does: a default config named after the model, with moon-rl's defaults ...
            # ... except the contrastive term for a dataset that cannot carry it: a plain TRL prompt dataset (no
            # 'id'/'group_id' columns) with no config is the drop-in case, so it trains as trl.GRPOTrainer does;
            # an explicit MoonGRPOConfig with the term on still refuses such data (`_check_id_columns`).
            columns = getattr(kwargs.get("train_dataset", pos[0] if pos else None), "column_names", None)
            term_off = columns is not None and not set(ID_COLUMNS) <= set(columns)
            if term_off:
                import warnings

                warnings.warn(
                    "args=None and the training dataset has no 'id'/'group_id' columns: contrastive term off "
                    "(contrastive_weight=0), training as trl.GRPOTrainer; pass a MoonGRPOConfig and GRPO data from "
                    "`moon-rl data prepare --task grpo` to train the embedding head",
                    stacklevel=2,
                )
            args = MoonGRPOConfig(output_dir=f"{default_run_name(model)}-GRPO", **({"contrastive_weight": 0.0} if term_off else {}))
        if not isinstance(args, MoonGRPOConfig):
            raise MoonError(
                f"MoonGRPOTrainer needs a MoonGRPOConfig, got {type(args).__name__}: it takes every GRPOConfig field; "
                "MoonGRPOConfig(..., contrastive_weight=0) trains exactly like trl.GRPOTrainer"
            )
        processing_class = kwargs.get("processing_class")
        if processing_class is not None:
            # TRL's contract: left padding. TRL pads prompt ids on the left itself; a right-padding processor
            # would misalign the VL token-type ids (which place image tokens for rotary positions) with them.
            getattr(processing_class, "tokenizer", processing_class).padding_side = "left"
        self._scoring: ScoringPass | None = None
        self._bank: CandidateBank | None = None
        if args.contrastive_on and args.pooling in REASONING_POOLINGS:
            pos, kwargs = _with_reasoning_prompts(pos, kwargs)
        funcs = reward_funcs if isinstance(reward_funcs, list) else ([] if reward_funcs is None else [reward_funcs])
        self._reward_wants_embeddings = any(needs_embeddings(f) for f in funcs)
        funcs = [with_embeddings(f, self._reward_embeddings, self._reward_candidates) if needs_embeddings(f) else f for f in funcs]
        super().__init__(model, funcs, args, *pos, **kwargs)
        attach_for_training(self.model, self.args, self.args.seed, extras_dir, embeddings_wanted=self._reward_wants_embeddings)
        use_backbone_only_ref_sync(self)
        base = unwrap_model(self.model)
        self._policy_adapter = base.active_adapter if is_peft_model(base) else None
        if self.contrastive_on:
            pooling = self._pooling()
            if (pooling in REASONING_POOLINGS) != (self.args.pooling in REASONING_POOLINGS):
                raise MoonError(
                    f"the saved head pools {pooling!r} but the config says pooling={self.args.pooling!r}: the reasoning poolings "
                    "need their own prompts (text + cue), so set pooling to the head's"
                )
            if self._input_pooling() and self._reward_wants_embeddings:
                raise MoonError(
                    "pooling='input' embeds the row's own text, which no rollout changes: a reward that scores rollout "
                    "embeddings (retrieval) would give every rollout of a prompt the same value; use pooling mean or fusion"
                )
            hint = (
                "prompts per generation batch = generation_batch_size / num_generations "
                f"({self.args.generation_batch_size} / {self.num_generations}): raise per_device_train_batch_size above "
                "num_generations, or steps_per_generation / gradient_accumulation_steps (contrastive_bank keeps the split "
                "generation batch together)"
            )
            own_forward = self._input_pooling() or self._reasoning_pooling()
            check_contrastive_data(self, "grpo", self.args.generation_batch_size // self.num_generations, hint, own_forward)
            if not hasattr(self.train_dataset, "__len__") and self.shuffle_dataset:
                import warnings

                warnings.warn(
                    "the training set is an iterable dataset, which TRL shuffles as a stream: the group-aware batch order "
                    "does not apply, so rows sharing a group_id meet in a generation batch (as positives) only by chance; "
                    "stream rows of one group next to each other and set shuffle_dataset=False, or use a map-style Dataset",
                    stacklevel=2,
                )
        if (self._reward_wants_embeddings or self._bank_needed()) and (self.tools or self.rollout_func is not None):
            raise MoonError("rollout embeddings (retrieval reward, contrastive bank) do not support tools or rollout_func")

    def _bank_needed(self) -> bool:
        return self.contrastive_on and self.args.contrastive_bank and self.args.steps_per_generation > 1

    # ---- data -------------------------------------------------------------------------------------

    def _get_train_sampler(self, dataset=None):
        dataset = dataset if dataset is not None else self.train_dataset
        if not self.contrastive_on or "group_id" not in (getattr(dataset, "column_names", None) or []):
            return super()._get_train_sampler(dataset)
        return GroupRepeatSampler(
            dataset["group_id"],
            clusters=batch_clusters(dataset, self.args.hard_negatives_by),
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )

    # ---- generation and scoring -------------------------------------------------------------------

    def _generate(self, prompts: list):
        out = list(super()._generate(prompts))
        images = out[6]
        if images is not None:  # a row without images comes back as None; the processor needs []
            out[6] = images = [x if x is not None else [] for x in images]
        if self._scoring is not None:
            self._scoring.prompts, self._scoring.prompt_ids, self._scoring.completion_ids = prompts, out[0], out[1]
            self._scoring.images = images
        return tuple(out)

    def _generate_single_turn(self, *args: Any, **kwargs: Any):
        if self.use_vllm:
            context = detached_extras(self.model)
        elif self.contrastive_on and self.args.merged_rollouts and not self.use_transformers_continuous_batching:
            context = merged_lora(self.model)  # a no-op for a model it cannot merge and restore exactly
        else:
            context = contextlib.nullcontext()
        with context:
            return super()._generate_single_turn(*args, **kwargs)

    def _policy_pass(self, model) -> bool:
        """Is this forward the current policy (not TRL's reference: another model, or adapters disabled)?"""
        if model is not self.model:
            return False
        base = unwrap_model(model)
        if self._policy_adapter is None:
            return True
        return bool(base.has_active_enabled_adapter) and base.active_adapter == self._policy_adapter

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, **kwargs):
        scoring = self._scoring
        if model is self.model and not self._policy_pass(model):  # TRL's reference pass: PEFT adapters disabled
            with residual_suspended(model):  # the reference is the initial model, whose residual is the identity
                return self._logps(model, input_ids, attention_mask, logits_to_keep, batch_size, **kwargs)
        if scoring is None or not scoring.want_embeddings or scoring.embeddings is not None or torch.is_grad_enabled() or not self._policy_pass(model):
            return self._logps(model, input_ids, attention_mask, logits_to_keep, batch_size, **kwargs)
        with HiddenStateCapture(model, capture_no_grad=True) as capture:
            out = self._logps(model, input_ids, attention_mask, logits_to_keep, batch_size, **kwargs)
        scoring.embeddings = self._embed_no_grad(capture.hidden_states(), input_ids, attention_mask, logits_to_keep)
        scoring.source = "trl_forward"
        return out

    def _logps(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, **kwargs):
        """TRL's log-prob forward, run chunk by chunk when a chunk would hold no image (see `image_safe_chunks`)."""
        chunks = image_safe_chunks(input_ids.size(0), batch_size, kwargs)
        if chunks is None:
            return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size, **kwargs)
        outs = [
            super(MoonGRPOTrainer, self)._get_per_token_logps_and_entropies(model, input_ids[rows], attention_mask[rows], logits_to_keep, **sub)
            for rows, sub in chunks
        ]
        logps = torch.cat([o[0] for o in outs])
        entropies = torch.cat([o[1] for o in outs]) if outs[0][1] is not None else None
        aux = torch.stack([o[2] for o in outs]).mean() if outs[0][2] is not None else None
        return logps, entropies, aux

    def _embed_no_grad(self, hidden, input_ids, attention_mask, logits_to_keep) -> torch.Tensor:
        reasoning = completion_mask_of(attention_mask, logits_to_keep)
        masks = modality_masks(input_ids, attention_mask, reasoning, image_token_id_of(self.model))
        with torch.no_grad():
            return get_extras(self.model).embed(hidden, masks)[0]  # (N, D)

    def _rollout_embeddings(self, scoring: ScoringPass) -> torch.Tensor:
        """(N, D) no-grad embeddings of this process's rollouts: captured from TRL's pass, else one forward."""
        if scoring.embeddings is None:
            if scoring.completion_ids is None:
                raise RuntimeError("rollout embeddings were asked for before any completion was generated")
            input_ids, attention_mask, keep, kwargs = rollout_forward_inputs(self, scoring)
            mode = "train" if self.model.training else "eval"
            batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
            with (
                torch.no_grad(),
                activation_checkpointing_off(self.model, self.args.gradient_checkpointing_kwargs),
                HiddenStateCapture(self.model, capture_no_grad=True) as capture,
            ):
                self._logps(self.model, input_ids, attention_mask, keep, batch_size, **kwargs)
            scoring.embeddings = self._embed_no_grad(capture.hidden_states(), input_ids, attention_mask, keep)
            scoring.source = "extra_forward"
        return scoring.embeddings

    def _reward_embeddings(self) -> torch.Tensor:
        if self._scoring is None:
            raise MoonError("a reward asked for `embeddings` outside MoonGRPOTrainer's scoring step")
        if self._reasoning_pooling():
            return self._reasoning_embeddings_no_grad(self._scoring)
        return self._rollout_embeddings(self._scoring)

    def _reward_candidates(self) -> tuple[torch.Tensor, list[str], list[str]]:
        """Every process's rollout embeddings with their group and row ids, gathered: what an in-batch ranking
        reward ranks against (TRL calls rewards on each process's slice)."""
        from accelerate.utils import gather_object

        scoring = self._scoring
        emb = self._reward_embeddings()
        rows = scoring.rows or []
        return (
            self.accelerator.gather(emb.contiguous()),
            gather_object([str(r["group_id"]) for r in rows]),
            gather_object([str(r["id"]) for r in rows]),
        )

    # ---- the reasoning poolings: the vector read after each rollout, in the layout `encode` serves -----------

    def _reasoning_pooling(self) -> bool:
        return self._pooling() in REASONING_POOLINGS

    def _rollout_layout(self, rows: list[dict], completion_ids) -> dict[str, torch.Tensor]:
        """Text + cue + each rollout's decoded reasoning + end token (`moon_rl.head.reasoning.reasoning_layout`):
        decoded and re-tokenized as `encode` does with the reasoning it generates or is given."""
        ids = [c.tolist() if isinstance(c, torch.Tensor) else list(c) for c in completion_ids]
        reasonings = [self._tokenizer.decode(c, skip_special_tokens=True).strip() for c in ids]
        tokens = get_extras(self.model).args.max_reasoning_tokens
        return reasoning_layout(self.processing_class, record_texts(rows), reasonings, tokens, device=self.accelerator.device)

    def _reasoning_embeddings_no_grad(self, scoring: ScoringPass) -> torch.Tensor:
        if scoring.embeddings is None:
            if scoring.completion_ids is None or scoring.rows is None:
                raise RuntimeError("rollout embeddings were asked for before any completion was generated")
            scoring.layout = self._rollout_layout(scoring.rows, scoring.completion_ids)
            with torch.no_grad():
                hidden = backbone_hidden(self.model, scoring.layout)
                scoring.embeddings = get_extras(self.model).embed(hidden, layout_masks(scoring.layout))[0]
            scoring.source = "extra_forward"
        return scoring.embeddings

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        own = self._input_pooling() or self._reasoning_pooling()  # embeddings from moon-rl's own forward, not TRL's
        self._scoring = scoring = ScoringPass(want_embeddings=(self._reward_wants_embeddings or (mode == "train" and self._bank_needed())) and not own)
        scoring.rows = inputs
        try:
            output = super()._generate_and_score_completions(inputs)
            if self.contrastive_on:
                self._attach_ids(output, inputs)
                if mode == "train" and self._bank_needed():
                    if self._input_pooling():
                        emb = self._input_embeddings_no_grad(output)
                    elif self._reasoning_pooling():
                        emb = self._reasoning_embeddings_no_grad(scoring)
                    else:
                        emb = self._rollout_embeddings(scoring)
                    self._bank = CandidateBank.gather(self.accelerator, emb, output[GROUP_KEY], output[ROW_KEY], output[UID_KEY])
        finally:
            self._scoring = None
        if scoring.source is not None:
            self._metrics[mode]["contrastive/rollout_embeddings_reused"].append(float(scoring.source == "trl_forward"))
        for name, fn in zip(self.reward_func_names, self.reward_funcs, strict=True):
            while fn is not None and not hasattr(fn, "skipped_last"):  # look through wrappers for a GuardedReward
                fn = getattr(fn, "fn", None)
            if fn is not None:
                self._metrics[mode][f"rewards/{name}/skipped"].append(float(fn.skipped_last))
        return output

    def _attach_ids(self, output: dict, inputs: list[dict]) -> None:
        """(N,) int64 tensors per rollout; tensors are what TRL's shuffle/split carry to `_compute_loss`."""
        missing = [c for c in ID_COLUMNS if c not in inputs[0]]
        if missing:
            raise MoonError(f"training rows have no {missing}; the contrastive loss needs 'id' and 'group_id' (or contrastive_weight=0)")
        device, n = self.accelerator.device, len(inputs)
        output.update(id_tensors(inputs, device=device))
        output[UID_KEY] = torch.arange(n, device=device) + self.accelerator.process_index * n
        if self._input_pooling():  # (N, L_text): split and shuffled with the rollouts like every other tensor
            embed = tokenize_texts(self.processing_class, record_texts(inputs), device=device)
            output[EMBED_IDS_KEY], output[EMBED_MASK_KEY] = embed["input_ids"], embed["attention_mask"]
        elif self._reasoning_pooling():  # (N, L) layout tensors, split and shuffled with the rollouts likewise
            layout = self._scoring.layout  # built when a reward read the rollouts' vectors
            if layout is None:
                mask = output["completion_mask"].bool()
                layout = self._rollout_layout(inputs, [ids[m] for ids, m in zip(output["completion_ids"], mask)])
            output.update({LAYOUT_PREFIX + k: v for k, v in layout.items()})

    def _pooling(self) -> str:
        extras = get_extras(self.model)
        return extras.args.pooling if extras is not None else self.args.pooling

    def _input_pooling(self) -> bool:
        return self._pooling() == "input"

    def _input_embeddings_no_grad(self, output: dict) -> torch.Tensor:
        embed = {"input_ids": output[EMBED_IDS_KEY], "attention_mask": output[EMBED_MASK_KEY]}
        with torch.no_grad():
            return get_extras(self.model).embed(backbone_hidden_distinct(self.model, embed), input_masks(embed["attention_mask"]))[0]

    # ---- loss -------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        if not self.contrastive_on:
            return super()._compute_loss(model, inputs)
        mode = "train" if self.model.training else "eval"
        if self._reasoning_pooling():
            # The reasoning poolings: the policy loss is TRL's as is; each rollout's vector is read in the layout
            # `encode` serves (text + cue + that rollout's reasoning + end), one forward of its own, with gradient.
            loss = super()._compute_loss(model, inputs)
            layout = {k[len(LAYOUT_PREFIX):]: inputs[k] for k in inputs if k.startswith(LAYOUT_PREFIX)}
            hidden, masks = backbone_hidden(model, layout), layout_masks(layout)  # (B, L, H)
            normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            if self.args.input_contrastive_weight > 0:  # the same model's no-reasoning vector, from the text span
                plain = contrastive_term(get_extras(model), hidden, masks, inputs[GROUP_KEY], inputs[ROW_KEY], self.args.contrastive_temperature,
                                         uids=inputs[UID_KEY], mode="input")
                loss = loss + self.args.input_contrastive_weight * plain.loss.to(loss.dtype) / normalizer
                log_contrastive(self._metrics[mode], self.accelerator, plain, prefix="input/")
        elif self._input_pooling():
            # Pooling "input": the policy loss is TRL's as is; the rows' plain text gets a short forward of its own,
            # once per distinct text (a prompt's rollouts share it).
            loss = super()._compute_loss(model, inputs)
            embed = {"input_ids": inputs[EMBED_IDS_KEY], "attention_mask": inputs[EMBED_MASK_KEY]}
            hidden, masks = backbone_hidden_distinct(model, embed), input_masks(embed["attention_mask"])  # (B, L_text, H)
        else:
            # Training forwards run with grad; evaluation runs under no_grad, so capture those there.
            with HiddenStateCapture(model, capture_no_grad=not torch.is_grad_enabled()) as capture:
                loss = super()._compute_loss(model, inputs)
            # Added after the parent has returned, so no loss_type branch can skip it (TRL issue 7009).
            hidden = capture.hidden_states()  # (B, P+C, H)
            input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)  # (B, P+C)
            attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            reasoning = completion_mask_of(attention_mask, inputs["completion_ids"].size(1))
            masks = modality_masks(input_ids, attention_mask, reasoning, image_token_id_of(model))
        term = contrastive_term(
            get_extras(model), hidden, masks, inputs[GROUP_KEY], inputs[ROW_KEY], self.args.contrastive_temperature,
            uids=inputs[UID_KEY], bank=self._bank if mode == "train" else None,
        )
        # Same scaling as TRL's own terms: a per-micro-batch mean, averaged over the accumulation window.
        normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        loss = loss + self.args.contrastive_weight * term.loss.to(loss.dtype) / normalizer
        log_contrastive(self._metrics[mode], self.accelerator, term)
        return loss


def _with_reasoning_prompts(pos: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The training set with each row's prompt replaced by its text + cue (`moon_rl.head.reasoning`): a reasoning
    pooling's rollouts are the reasoning its vector is read after, so they continue the layout `encode` serves,
    not the chat prompt `moon-rl data prepare --task grpo` wrote (that one asks for <think>/<answer> traces)."""
    from moon_rl.head.reasoning import REASONING_CUE

    def rewrite(dataset):
        if dataset is None or not hasattr(dataset, "map"):
            return dataset
        return dataset.map(lambda row: {"prompt": record_texts([row])[0] + REASONING_CUE}, desc="reasoning prompts")

    if "train_dataset" in kwargs:
        kwargs = {**kwargs, "train_dataset": rewrite(kwargs["train_dataset"])}
    elif pos:
        pos = (rewrite(pos[0]), *pos[1:])
    if isinstance(kwargs.get("eval_dataset"), dict):
        kwargs = {**kwargs, "eval_dataset": {k: rewrite(v) for k, v in kwargs["eval_dataset"].items()}}
    elif kwargs.get("eval_dataset") is not None:
        kwargs = {**kwargs, "eval_dataset": rewrite(kwargs["eval_dataset"])}
    return pos, kwargs


# TRL 1.16 reads `model.is_gradient_checkpointing` in its own rollout path (`trl.models.utils.
# _unwrap_model_for_generation`, every generation batch), a property transformers 5 deprecated with a FutureWarning.
# Our code reads the new name (`activation_checkpointing_off`); this filter hides that one message, which only TRL's
# call can raise now. Remove it with the TRL pin once TRL reads `is_activation_checkpointing`.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)


@contextlib.contextmanager
def activation_checkpointing_off(model, checkpointing_kwargs: dict | None = None):
    """TRL's `disable_gradient_checkpointing` under transformers 5's names (TRL's reads the deprecated
    `is_gradient_checkpointing` and warns): checkpointing off inside, back on after when it was on."""
    was_on = bool(getattr(model, "is_activation_checkpointing", False))
    if was_on:
        model.activation_checkpointing_disable()
    try:
        yield
    finally:
        if was_on:
            model.activation_checkpointing_enable(checkpointing_kwargs)
