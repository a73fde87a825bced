"""What the moon-rl trainers (SFT and GRPO) share: the embedding add-ons on the policy, the contrastive
term computed from captured hidden states, and saving/loading the add-ons with every checkpoint.

`MoonTrainerMixin` goes *before* the TRL trainer in the bases (`class MoonSFTTrainer(MoonTrainerMixin,
SFTTrainer)`). It overrides, and only extends:
- `_save`: writes the base model / adapter with the add-ons detached (so a full fine-tune's
  `save_pretrained` never contains weights the architecture lacks), then `moon_extras.*` beside it (under
  FSDP / ZeRO-3 from the full state dict HF gathered, since the live add-ons are this process's shard).
- `_load_from_checkpoint`: the same in reverse on `--resume` (under FSDP the checkpoint holds the whole wrapped
  model, add-ons included, and loads as one); also continues TRL's SFT token counter
  (`num_tokens` in the logs), which TRL keeps only in memory.
- `_save_checkpoint`: after the parent has written everything (on every process), marks the checkpoint
  complete (`moon_rl/trainers/checkpoints.py`), so `--resume` never picks a folder that a crash left half-written;
  a stale marker is removed before a folder is rewritten, and old checkpoints are rotated out only after
  the new one is marked (HF rotates before, which with `save_total_limit=1` leaves a window with no
  complete checkpoint at all).
- `train`: refuses a training set that data preparation left empty (TRL drops SFT rows truncated before
  their completion, and would "finish" at step 0); under FSDP, saves full state dicts (`full_state_dict_under_fsdp`). When training raises, restores the signal handlers of
  `moon_rl.trainers.interrupt.GracefulInterrupt` (HF calls `on_train_end` only on success; Ctrl-C must work again
  in a notebook) and closes the progress bars (the CLI's `error: ...` line must not trail the bar).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from trl.trainer.callbacks import SyncRefModelCallback

from moon_rl.trainers.checkpoints import clear_complete, mark_complete, rotate_checkpoints, save_errors
from moon_rl.errors import MoonError
from moon_rl.head.extras import (
    EmbeddingArgs,
    MoonExtras,
    attach_extras,
    detached_extras,
    get_extras,
    has_extras,
    load_extras,
    save_extras,
)
from moon_rl.head.ids import missing_id_columns


def setup_extras(model: nn.Module, args: EmbeddingArgs, seed: int, extras_dir: str | Path | None = None) -> MoonExtras:
    """Attach fresh add-ons built from `args`, or the saved ones from `extras_dir` (a moon-rl output)."""
    if extras_dir is not None:
        from moon_rl.head.extras import load_extras_into

        extras = load_extras_into(model, extras_dir)
        # The saved head fixes the architecture (pooling, modules); say so when the new config asks otherwise.
        wanted, kept = args.embedding_fields(), extras.args.embedding_fields()
        shape_keys = ("embedding_dim", "pooling", "fusion_heads", "residual_enhancement", "residual_source_layer", "residual_target_layers")
        differ = {k: (wanted[k], kept[k]) for k in shape_keys if wanted[k] != kept[k]}
        if differ:
            import warnings

            warnings.warn(
                f"continuing from {extras_dir}: its embedding head keeps its saved settings "
                + ", ".join(f"{k}={old!r} (config asked {new!r})" for k, (new, old) in differ.items()),
                stacklevel=2,
            )
        return extras
    return attach_extras(model, MoonExtras.for_model(model, args, seed=seed))


def default_run_name(model: str | nn.Module) -> str:
    """What TRL names a run built with `args=None` (`f"{name}-GRPO"`, `f"{name}-SFT"`): the model id's last part."""
    from trl.trainer.utils import get_config_model_id

    name = model if isinstance(model, str) else get_config_model_id(model.config)
    return name.rstrip("/").split("/")[-1]


class BackboneSyncRefModelCallback(SyncRefModelCallback):
    """TRL's `SyncRefModelCallback` on the backbone only. TRL zips the policy's parameters with the reference's
    (`strict=True`); the reference is built from the backbone, so the add-ons must be out of the policy then."""

    def on_step_end(self, args, state, control, **kwargs):
        with detached_extras(kwargs["model"]):
            return super().on_step_end(args, state, control, **kwargs)


def use_backbone_only_ref_sync(trainer) -> None:
    """Swap TRL's ref-model sync callback (added by `GRPOTrainer.__init__` with `sync_ref_model=True`) for
    `BackboneSyncRefModelCallback`."""
    callbacks = trainer.callback_handler.callbacks
    for i, callback in enumerate(callbacks):
        if type(callback) is SyncRefModelCallback:
            callbacks[i] = BackboneSyncRefModelCallback(ref_model=callback.ref_model, accelerator=callback.accelerator)


def extras_needed(args: EmbeddingArgs, embeddings_wanted: bool = False, extras_dir: str | Path | None = None) -> bool:
    """Does a training run attach any add-on? Only when something uses one: the contrastive term, a MOON3.0 module
    the config asks for (the residual is part of the forward; a fusion head is what the run is asked to save),
    a reward that reads rollout embeddings, or a saved head to continue from (carried through, see
    `attach_for_training`). Otherwise the policy is the backbone alone and the trainer is TRL's exactly: no
    extra parameters, optimizer state, forward work or saved files."""
    return args.contrastive_on or args.residual_enhancement or args.pooling == "fusion" or embeddings_wanted or extras_dir is not None


def attach_for_training(model: nn.Module, args: EmbeddingArgs, seed: int, extras_dir: str | Path | None = None,
                        embeddings_wanted: bool = False) -> MoonExtras | None:
    """The add-ons a trainer attaches after TRL has wrapped the model (PEFT would otherwise freeze them), or None.

    With the contrastive term off, the pooling head (and fusion) gets no gradient, so it is frozen: out of the
    optimizer, out of DDP's reducer (which fails on trainable parameters that never get a gradient), and out of
    the "every trainable parameter changed" check TRL users run; a saved head is then carried through unchanged.
    The residual module, if any, is part of the forward pass and stays trainable.
    """
    if not extras_needed(args, embeddings_wanted, extras_dir):
        return None
    # fork_rng: building the head must not move the global RNG (sampling, LoRA dropout), or the equivalence
    # with the unmodified TRL trainers breaks.
    with torch.random.fork_rng(devices=[]):
        extras = setup_extras(model, args, seed=seed, extras_dir=extras_dir)
    if not args.contrastive_on:
        for module in (extras.head, extras.fusion):
            if module is not None:
                module.requires_grad_(False)
    return extras


def dataset_column(dataset, name: str) -> list | None:
    """A column of a training set, or None (absent, or an iterable dataset that cannot be read up front)."""
    present = name in (getattr(dataset, "column_names", None) or [])
    return list(dataset[name]) if present and hasattr(dataset, "__len__") else None


def check_positives_possible(anchors_per_batch: int, group_ids: list | None, batch_hint: str) -> None:
    """With the contrastive term on, refuse (before training starts) a run in which no anchor can ever have a
    positive: the head would get no gradient and train silently on nothing.

    `anchors_per_batch`: distinct rows the loss of one step can see together (GRPO: prompts per generation
    batch; SFT: rows per batch over all processes). `group_ids`: the training set's `group_id` column, when known.
    """
    fix = (
        "positives are rows that share a group_id (views of one product, queries that found it); "
        f"{batch_hint}, give rows of one product the same group_id, or set contrastive_weight=0"
    )
    if anchors_per_batch < 2:
        raise MoonError(f"the contrastive term has no positive pair: each batch holds {anchors_per_batch} distinct row(s); {fix}")
    if group_ids is not None and len(group_ids) > 1 and len(set(map(str, group_ids))) == len(group_ids):
        raise MoonError(f"the contrastive term has no positive pair: every training row has its own group_id; {fix}")


def check_id_columns(dataset, task: str) -> None:
    """With the term on, the training set needs `id` and `group_id` (an iterable dataset: checked on its first batch)."""
    missing = missing_id_columns(getattr(dataset, "column_names", None))
    if missing:
        raise MoonError(
            f"the training dataset has no {missing} column(s): the contrastive term needs 'id' (one per row, so a "
            "row's own rollouts are not its positives) and 'group_id' (rows sharing it are positives) "
            f"(build {task.upper()} data with `moon-rl data prepare --task {task}`) or set contrastive_weight=0"
        )


def check_contrastive_data(trainer, task: str, anchors_per_batch: int, batch_hint: str, input_pooling: bool) -> None:
    """With the term on, what the training data must give it, checked as the trainer is built (before any step):
    the id columns, the `hard_negatives_by` column, the text pooling "input" embeds, and that some anchor can
    have a positive at this batch shape."""
    from moon_rl.head.text import check_input_pooling
    from moon_rl.trainers.sampling import batch_clusters

    dataset = trainer.train_dataset
    check_id_columns(dataset, task)
    batch_clusters(dataset, trainer.args.hard_negatives_by)  # fail now, naming the dataset's own columns
    if input_pooling:
        check_input_pooling(trainer.model, dataset, trainer.args.pooling)
    check_positives_possible(anchors_per_batch, dataset_column(dataset, "group_id"), batch_hint)


def full_extras_state(extras: nn.Module, gathered: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    """The add-ons' tensors to save: those of the gathered full state dict where it has them (ZeRO-3 can leave
    frozen ones out), this process's own for the rest; None when nothing was gathered (one process, DDP)."""
    if not gathered:
        return None
    return {k: gathered[k] if k in gathered else v for k, v in extras.state_dict().items()}


def full_state_dict_under_fsdp(trainer) -> None:
    """Under FSDP, save full state dicts. With SHARDED_STATE_DICT, HF's save_model writes no weights (the final
    folder would hold no adapter and no head) and a PEFT checkpoint's shards hold the adapter only (--resume
    would lose the head); a full state dict is gathered on the main process and saved as a DDP run's is."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None) if getattr(trainer, "is_fsdp_enabled", False) else None
    if plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        import warnings

        warnings.warn(f"FSDP state_dict_type {plugin.state_dict_type.name} -> FULL_STATE_DICT: moon-rl saves the embedding head from full state dicts")
        plugin.state_dict_config = plugin.optim_state_dict_config = None  # else the sharded ones stay with FULL
        plugin.set_state_dict_type("FULL_STATE_DICT")


class MoonTrainerMixin:
    """Save/load of the add-ons with the model; see module docstring."""

    @property
    def contrastive_on(self) -> bool:
        return self.args.contrastive_on

    def moon_extras(self) -> MoonExtras | None:
        return get_extras(self.model)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        gathered = None
        if state_dict is not None:  # FSDP / ZeRO-3: gathered from every process
            gathered = {f".{k}".split(".moon_extras.", 1)[1]: v for k, v in state_dict.items() if ".moon_extras." in f".{k}"}
            state_dict = {k: v for k, v in state_dict.items() if ".moon_extras." not in f".{k}"}
        with detached_extras(self.model) as extras:
            super()._save(output_dir, state_dict=state_dict)
        if extras is not None and self.args.should_save:
            save_extras(extras, output_dir, state=full_extras_state(extras, gathered))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        if getattr(self, "is_fsdp_enabled", False):
            # accelerate's load_fsdp_model wants every key it saved, add-ons included; their live parameters are
            # shards (DTensors), which moon_extras.safetensors' plain tensors cannot be loaded into.
            super()._load_from_checkpoint(resume_from_checkpoint, model=model)
            self._restore_token_count(resume_from_checkpoint)
            return
        with detached_extras(self.model):
            super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        extras = self.moon_extras()
        if extras is not None and has_extras(resume_from_checkpoint):
            saved = load_extras(resume_from_checkpoint)
            extras.load_state_dict(saved.state_dict())
        self._restore_token_count(resume_from_checkpoint)

    def _restore_token_count(self, checkpoint: str) -> None:
        """TRL's SFTTrainer counts the `num_tokens` it logs in memory (`_total_train_tokens`), not in the
        trainer state, so a resumed run would count from zero; continue from the checkpoint's last log."""
        import json

        state_file = Path(checkpoint) / "trainer_state.json"
        if not hasattr(self, "_total_train_tokens") or not state_file.is_file():
            return
        history = json.loads(state_file.read_text(encoding="utf-8")).get("log_history", [])
        counts = [h["num_tokens"] for h in history if isinstance(h.get("num_tokens"), int | float)]
        if counts:
            self._total_train_tokens = int(counts[-1])

    def _save_checkpoint(self, model: nn.Module, trial) -> None:
        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"checkpoint-{self.state.global_step}")
        if self.args.should_save:
            clear_complete(folder)
        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # the parent would rotate before our marker exists; done below instead
        try:
            with save_errors(folder, run_dir):  # disk full / no permission: one line naming the last good checkpoint
                super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # sharded saves (DeepSpeed, FSDP): every process has written its part
        if self.args.should_save and os.path.isdir(folder):
            mark_complete(folder, self.state.global_step)
            rotate_checkpoints(run_dir, limit, keep=self.state.best_model_checkpoint)

    def train(self, *args, **kwargs):
        dataset = getattr(self, "train_dataset", None)
        if dataset is not None and hasattr(dataset, "__len__") and len(dataset) == 0:
            # TRL's SFT preparation drops rows whose completion was truncated away; a run over nothing would
            # "finish" at step 0 and save an untrained model.
            max_length = getattr(self.args, "max_length", None)
            why = f": max_length={max_length} cut every row before its first trained token; raise max_length" if max_length else ""
            raise MoonError(f"no training rows left after data preparation{why}")
        full_state_dict_under_fsdp(self)
        try:
            return super().train(*args, **kwargs)
        except BaseException:
            self._close_progress_bars()  # so the error message starts on its own line, not after the bar
            raise
        finally:
            from moon_rl.trainers.interrupt import GracefulInterrupt

            for callback in self.callback_handler.callbacks:
                if isinstance(callback, GracefulInterrupt):
                    callback.restore()

    def _close_progress_bars(self) -> None:
        from transformers.trainer_callback import ProgressCallback

        for callback in self.callback_handler.callbacks:
            if isinstance(callback, ProgressCallback):
                for name in ("prediction_bar", "training_bar"):
                    bar = getattr(callback, name, None)
                    if bar is not None:
                        bar.close()
                        setattr(callback, name, None)


def load_and_wrap(trainer_cls, config, model_args, dataset, callbacks: list | None = None, **kwargs):
    """Load the policy (a base model or a moon-rl output: its adapter, head and modules) and wrap it in
    `trainer_cls` (MoonSFTTrainer / MoonGRPOTrainer) with the processor, LoRA config and saved head."""
    from moon_rl.models.loading import load_for_training

    from moon_rl.trainers.progress import use_compact_logging

    model, processor, peft_config, extras_dir = load_for_training(model_args)
    trainer = trainer_cls(
        model=model, args=config, train_dataset=dataset, processing_class=processor, peft_config=peft_config,
        callbacks=callbacks, extras_dir=extras_dir, **kwargs,
    )
    use_compact_logging(trainer)  # a bar with the headline figures, every log in OUTPUT_DIR/logs.jsonl
    return trainer


def train_and_save(trainer, interrupt, kind: str, model_args, resume_from: str | None, log_key: str) -> dict:
    """Train (or resume), save the final artifacts + trainer state + moon_rl.json into `output_dir`, and
    return a summary: output folder, steps, whether a signal stopped it, first/last logs that carry `log_key`."""
    from moon_rl.models.loading import write_run_info

    from moon_rl.trainers.checkpoints import begin_final_save, end_final_save

    config = trainer.args
    trainer.train(resume_from_checkpoint=resume_from)
    if config.should_save:
        begin_final_save(config.output_dir)  # a crash from here on leaves a folder loaders know not to trust
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(config.output_dir)
    trainer.accelerator.wait_for_everyone()  # sharded saves: every process has written its part
    if config.should_save:
        trainer.save_state()
        write_run_info(config.output_dir, kind, config, model_args)
        end_final_save(config.output_dir)
    logs = [h for h in trainer.state.log_history if log_key in h]
    return {
        "out": config.output_dir,
        "global_step": trainer.state.global_step,
        "interrupted": interrupt.interrupted,
        "first": logs[0] if logs else {},
        "last": logs[-1] if logs else {},
    }
