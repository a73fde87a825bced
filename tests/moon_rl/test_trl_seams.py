"""Every private TRL / transformers-Trainer seam moon-rl relies on, in one table: the file to read when TRL moves.

moon-rl's trainers subclass TRL's and override or read private parts of them (method names, the signatures they
call, the tuple position they read, the dict keys they read, attributes TRL sets in `__init__`). TRL changes
those without notice, hence the pin in pyproject.toml (`trl>=1.16,<1.17`). To upgrade: widen the pin, run

    nice -n 10 .venv/bin/python -m pytest -q tests/moon_rl/test_trl_seams.py

and each failure starts with `TRL seam moved: <seam> (used by <moon-rl file: code>)` and says what is no
longer true; adapt that code, then run tests/moon_rl/test_grpo_equivalence.py, test_trl_compat.py and
test_grpo_groups.py, which check behaviour (this file checks shapes only: no training, no model).

The checks themselves (and how each kind is checked) are in trl_seam_checks.py.
`test_seam_check_names_the_seam_that_moved` shows a removed method and a reordered return tuple failing with
the seam's name.
"""

from __future__ import annotations

import functools
import importlib
import re
import tomllib
from importlib.metadata import version

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers import Trainer
from trl import GRPOTrainer, SFTTrainer
from trl_seam_checks import (
    COMMON,
    GRPO,
    ROLLOUT,
    ROOT,
    SAMPLING,
    SFT,
    Seam,
    SeamMoved,
    attribute,
    check_generate,
    check_get_config_model_id,
    check_logps,
    check_metrics,
    check_overlong,
    check_pad,
    check_prepare_inputs_carries_extra_keys,
    check_repeat_sampler,
    check_rotation,
    check_seam,
    check_split_pixel_values,
    check_sync_ref_callback,
    check_train_sampler,
    check_vllm_serve,
    contains,
    dict_keys_returned,
    member,
    params,
    require,
)

# ---- the table ----------------------------------------------------------------------------------------------

SEAMS: list[Seam] = [
    # GRPOTrainer methods moon-rl overrides or calls through super()
    Seam("GRPOTrainer.__init__", f"{GRPO}: MoonGRPOTrainer.__init__",
         "positional order (model, reward_funcs, args, train_dataset): args=None reads the dataset from pos[0]; "
         "a processing_class keyword",
         lambda: params(GRPOTrainer.__init__, positional=("model", "reward_funcs", "args", "train_dataset"), names=("processing_class",))),
    Seam("GRPOTrainer._generate", f"{GRPO}: MoonGRPOTrainer._generate",
         "stub run: out[0] prompt ids, out[1] completion ids, out[6] images; the caller unpacks them in that order",
         check_generate),
    Seam("GRPOTrainer._generate_single_turn", f"{GRPO}: MoonGRPOTrainer._generate_single_turn",
         "exists, takes (prompt_ids, images, multimodal_fields, num_generations), is what _generate calls, "
         "and holds the vLLM weight sync that must not see moon_extras",
         lambda: (params(member(GRPOTrainer, "_generate_single_turn"), positional=("prompt_ids", "images", "multimodal_fields", "num_generations")),
                  contains(GRPOTrainer._generate_single_turn, "self.vllm_generation.sync_weights()"),
                  contains(GRPOTrainer._generate, "self._generate_single_turn("))),
    Seam("GRPOTrainer._get_per_token_logps_and_entropies",
         f"{GRPO}: MoonGRPOTrainer._get_per_token_logps_and_entropies, MoonGRPOTrainer._logps; {ROLLOUT}: image_safe_chunks",
         "parameters moon-rl passes (model, input_ids, attention_mask, logits_to_keep, batch_size, image kwargs); "
         "stub run returns (logps, entropies, aux) in that order, None when not asked for",
         check_logps),
    Seam("GRPOTrainer._generate_and_score_completions", f"{GRPO}: MoonGRPOTrainer._generate_and_score_completions, MoonGRPOTrainer._compute_loss",
         "takes (inputs); its returned dict has prompt_ids, prompt_mask, completion_ids, completion_mask",
         lambda: (params(member(GRPOTrainer, "_generate_and_score_completions"), positional=("inputs",)),
                  require({"prompt_ids", "prompt_mask", "completion_ids", "completion_mask"},
                           dict_keys_returned(GRPOTrainer._generate_and_score_completions), "keys of the returned dict"))),
    Seam("GRPOTrainer._generate_and_score_completions (log-prob passes)", f"{GRPO}: MoonGRPOTrainer._policy_pass, MoonGRPOTrainer._get_per_token_logps_and_entropies",
         "the no-grad policy pass calls _get_per_token_logps_and_entropies(self.model, ...); a PEFT reference is "
         "self.model inside use_adapter(...) (adapters off), else self.ref_model",
         lambda: contains(GRPOTrainer._generate_and_score_completions, "self._get_per_token_logps_and_entropies(self.model,",
                          "with use_adapter(model, adapter_name=", "self._get_per_token_logps_and_entropies(self.ref_model,")),
    Seam("GRPOTrainer._generate_and_score_completions (forward inputs)", f"{ROLLOUT}: rollout_forward_inputs",
         "builds the forward inputs the way rollout_forward_inputs copies: prompt ids padded left and completion ids "
         "right with pad_to_multiple_of, truncated completions masked, images through apply_chat_template + the "
         "processor, token_type_ids / mm_token_type_ids zero-extended over the completion, num_images per row",
         lambda: contains(
             GRPOTrainer._generate_and_score_completions,
             'padding_value=self._tokenizer.pad_token_id, padding_side="left", pad_to_multiple_of=self.pad_to_multiple_of',
             'padding_value=self._tokenizer.pad_token_id, padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of',
             "if self.mask_truncated_completions:", "eos_and_pad = [*self.eos_token_ids, self._tokenizer.pad_token_id]",
             "completion_mask = completion_mask * (~is_truncated).unsqueeze(1).int()",
             "logits_to_keep = completion_ids.size(1)", "**self.chat_template_kwargs",
             'self.processing_class(images=images, text=prompts_text, padding=True, return_tensors="pt")',
             'k not in ["input_ids", "attention_mask"]', "token_type_ids.new_zeros(completion_ids.shape)",
             "mm_token_type_ids.new_zeros(completion_ids.shape)",
             "num_images = [len(img_list) if img_list else 0 for img_list in images]")),
    Seam("GRPOTrainer._prepare_inputs", f"{GRPO}: MoonGRPOTrainer._attach_ids",
         "the scoring output is shuffled and split by shuffle_sequence_dict / split_tensor_dict, which carry an "
         "extra (N,) tensor key aligned with the rows (stub run)",
         check_prepare_inputs_carries_extra_keys),
    Seam("GRPOTrainer._prepare_inputs (generation cycle)", "moon_rl/trainers/interrupt.py: cycle_steps",
         "rollouts are generated once every steps_per_generation * num_iterations micro-steps",
         lambda: contains(GRPOTrainer._prepare_inputs, "generate_every = self.args.steps_per_generation * self.num_iterations")),
    Seam("GRPOTrainer._compute_loss", f"{GRPO}: MoonGRPOTrainer._compute_loss",
         "takes (model, inputs); compute_loss delegates to it; it reads prompt/completion ids and masks and runs its "
         "forward through _get_per_token_logps_and_entropies (the one the hidden-state capture sees)",
         lambda: (params(member(GRPOTrainer, "_compute_loss"), positional=("model", "inputs")),
                  contains(GRPOTrainer.compute_loss, "return self._compute_loss(model, inputs)"),
                  contains(GRPOTrainer._compute_loss, 'inputs["prompt_ids"], inputs["prompt_mask"]',
                           'inputs["completion_ids"], inputs["completion_mask"]', "self._get_per_token_logps_and_entropies("))),
    Seam("GRPOTrainer._get_train_sampler", f"{GRPO}: MoonGRPOTrainer._get_train_sampler; {SAMPLING}: GroupRepeatSampler",
         "takes (dataset); stub run builds RepeatSampler(num_generations, generation_batch_size // num_generations, "
         "num_iterations * steps_per_generation, shuffle_dataset, seed); get_train_dataloader uses it",
         check_train_sampler),
    Seam("GRPOTrainer._calculate_rewards", "reward_fns/length.py: OverlongReward.__call__",
         "rewards get the completion token ids as `completion_ids`", lambda: contains(GRPOTrainer._calculate_rewards, "completion_ids=completion_ids_list")),
    # GRPOTrainer attributes moon-rl reads
    *[Seam(f"GRPOTrainer.{attr}", where, f"GRPOTrainer sets self.{attr}", attribute(GRPOTrainer, attr)) for attr, where in [
        ("_tokenizer", f"{ROLLOUT}: rollout_forward_inputs"),
        ("pad_to_multiple_of", f"{ROLLOUT}: rollout_forward_inputs"),
        ("eos_token_ids", f"{ROLLOUT}: rollout_forward_inputs"),
        ("mask_truncated_completions", f"{ROLLOUT}: rollout_forward_inputs"),
        ("chat_template_kwargs", f"{ROLLOUT}: rollout_forward_inputs"),
        ("num_generations", f"{GRPO}: MoonGRPOTrainer.__init__, MoonGRPOTrainer._get_train_sampler"),
        ("num_iterations", f"{GRPO}: MoonGRPOTrainer._get_train_sampler"),
        ("shuffle_dataset", f"{GRPO}: MoonGRPOTrainer.__init__, MoonGRPOTrainer._get_train_sampler"),
        ("use_vllm", f"{GRPO}: MoonGRPOTrainer._generate_single_turn"),
        ("tools", f"{GRPO}: MoonGRPOTrainer.__init__"),
        ("rollout_func", f"{GRPO}: MoonGRPOTrainer.__init__"),
        ("reward_func_names", f"{GRPO}: MoonGRPOTrainer._generate_and_score_completions"),
        ("reward_funcs", f"{GRPO}: MoonGRPOTrainer._generate_and_score_completions"),
        ("ref_model", f"{COMMON}: use_backbone_only_ref_sync"),
    ]],
    Seam("GRPOTrainer._metrics", f"{GRPO}: MoonGRPOTrainer._compute_loss, MoonGRPOTrainer._generate_and_score_completions",
         "a {mode: defaultdict(list)} that log() averages", check_metrics(GRPOTrainer)),
    # SFTTrainer
    Seam("SFTTrainer.__init__", f"{SFT}: MoonSFTTrainer.__init__", "positional order (model, args)",
         lambda: params(SFTTrainer.__init__, positional=("model", "args"))),
    Seam("SFTTrainer.compute_loss", f"{SFT}: MoonSFTTrainer.compute_loss",
         "takes (model, inputs, return_outputs, num_items_in_batch); returns (loss, outputs) with return_outputs",
         lambda: (params(SFTTrainer.compute_loss, positional=("model", "inputs", "return_outputs", "num_items_in_batch")),
                  contains(SFTTrainer.compute_loss, "return (loss, outputs) if return_outputs else loss"))),
    Seam("SFTTrainer._set_signature_columns_if_needed", f"{SFT}: MoonSFTTrainer._set_signature_columns_if_needed",
         "exists, sets self._signature_columns, which Trainer._remove_unused_columns reads after calling it",
         lambda: (contains(member(SFTTrainer, "_set_signature_columns_if_needed"), "self._signature_columns ="),
                  contains(Trainer._remove_unused_columns, "self._set_signature_columns_if_needed()", "self._signature_columns"))),
    Seam("SFTTrainer._total_train_tokens", f"{COMMON}: MoonTrainerMixin._restore_token_count",
         "the in-memory num_tokens counter: set in __init__, added to in compute_loss",
         lambda: (contains(SFTTrainer.__init__, "self._total_train_tokens = 0"), contains(SFTTrainer.compute_loss, "self._total_train_tokens +="))),
    Seam("SFTTrainer._metrics", f"{SFT}: MoonSFTTrainer.compute_loss, MoonSFTTrainer._log_nll",
         "a {mode: defaultdict(list)} that log() averages", check_metrics(SFTTrainer)),
    # transformers.Trainer
    Seam("Trainer._get_train_sampler", f"{SFT}: MoonSFTTrainer._get_train_sampler",
         "takes (train_dataset) positionally, as SFTTrainer inherits it",
         lambda: params(SFTTrainer._get_train_sampler, positional=("train_dataset",))),
    Seam("Trainer._save", f"{COMMON}: MoonTrainerMixin._save", "takes (output_dir, state_dict); save_model calls it",
         lambda: (params(member(Trainer, "_save"), positional=("output_dir", "state_dict")), contains(Trainer.save_model, "self._save(output_dir"))),
    Seam("Trainer._load_from_checkpoint", f"{COMMON}: MoonTrainerMixin._load_from_checkpoint",
         "takes (resume_from_checkpoint, model); train calls it",
         lambda: (params(member(Trainer, "_load_from_checkpoint"), positional=("resume_from_checkpoint", "model")),
                  contains(Trainer, "self._load_from_checkpoint(resume_from_checkpoint"))),
    Seam("Trainer._save_checkpoint", f"{COMMON}: MoonTrainerMixin._save_checkpoint",
         "takes (model, trial); rotates with save_total_limit=self.args.save_total_limit, which None turns off; "
         "the TRL trainers' overrides call it", lambda: (params(member(Trainer, "_save_checkpoint"), positional=("model", "trial")), check_rotation())),
    Seam("Trainer._get_output_dir", f"{COMMON}: MoonTrainerMixin._save_checkpoint", "takes (trial)",
         lambda: params(member(Trainer, "_get_output_dir"), names=("trial",))),
    Seam("Trainer.current_gradient_accumulation_steps", f"{GRPO}: MoonGRPOTrainer._compute_loss; {SFT}: MoonSFTTrainer.compute_loss, MoonSFTTrainer._log_nll",
         "Trainer sets it per accumulation window", attribute(Trainer, "current_gradient_accumulation_steps")),
    Seam("Trainer._train_batch_size", f"{SFT}: MoonSFTTrainer._get_train_sampler", "Trainer sets it", attribute(Trainer, "_train_batch_size")),
    Seam("SFTTrainer.compute_loss process scaling", f"{SFT}: MoonSFTTrainer._log_nll",
         "with average_tokens_across_devices, TRL multiplies the loss by num_processes // get_tp_size(), so _log_nll "
         "takes it as this process's token mean and does not divide again",
         lambda: (params(member(Trainer, "get_tp_size")),
                  contains(SFTTrainer.compute_loss, "loss = loss * (self.accelerator.num_processes // self.get_tp_size())"))),
    Seam("transformers.ProgressCallback.training_bar / prediction_bar", f"{COMMON}: MoonTrainerMixin._close_progress_bars",
         "the progress bars are these attributes",
         lambda: [member(importlib.import_module("transformers.trainer_callback").ProgressCallback(), a) for a in ("training_bar", "prediction_bar")]),
    # helpers imported from TRL
    Seam("trl.trainer.utils.RepeatSampler", f"{SAMPLING}: GroupRepeatSampler",
         "constructor keywords, the attributes GroupRepeatSampler reads, and the repeat nesting it copies", check_repeat_sampler),
    Seam("trl.trainer.callbacks.SyncRefModelCallback", f"{COMMON}: BackboneSyncRefModelCallback, use_backbone_only_ref_sync",
         "built with (ref_model, accelerator), kept as attributes; on_step_end reads kwargs['model']; GRPOTrainer adds one",
         check_sync_ref_callback),
    Seam("trl.trainer.utils.pad", f"{ROLLOUT}: rollout_forward_inputs", "keywords and left / right / multiple-of padding (run)", check_pad),
    Seam("trl.trainer.utils.split_pixel_values_by_grid", f"{ROLLOUT}: image_safe_chunks",
         "Qwen-style per-row split of pixel_values and image_grid_thw, rows without images included (run)", check_split_pixel_values),
    Seam("trl.trainer.utils.get_config_model_id", f"{COMMON}: default_run_name", "returns the config's _name_or_path (run)", check_get_config_model_id),
    Seam("trl.data_utils.apply_chat_template", f"{ROLLOUT}: rollout_forward_inputs",
         "takes (example, processing_class) and **template_kwargs",
         lambda: params(member(importlib.import_module("trl.data_utils"), "apply_chat_template"), positional=("example", "processing_class"), var_keyword=True)),
    Seam("trl.rewards.other_rewards.get_soft_overlong_punishment", "reward_fns/length.py: OverlongReward.__init__",
         "keywords (max_completion_len, soft_punish_cache); scores completion ids (run)", check_overlong),
    Seam("trl.scripts.vllm_serve.main / ScriptArguments", "moon_rl/trainers/vllm_support.py: serve",
         "main(script_args, extra_args); the ScriptArguments fields serve sets", check_vllm_serve),
]


@pytest.mark.parametrize("seam", SEAMS, ids=[s.name for s in SEAMS])
def test_trl_seam(seam: Seam):
    check_seam(seam)


def test_seam_names_are_unique():
    names = [s.name for s in SEAMS]
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]


def test_seam_table_points_at_live_code():
    """Each `used_by` names a file and code in it that exist, so the table follows moon-rl when it moves."""
    stale = []
    for seam in SEAMS:
        for part in seam.used_by.split("; "):
            path, _, names = part.partition(": ")
            module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
            for qualname in names.split(", "):
                try:
                    functools.reduce(getattr, qualname.split("."), module)
                except AttributeError:
                    stale.append(f"{seam.name}: {path}: {qualname}")
    assert not stale, f"the seam table names code that no longer exists: {stale}"


def test_installed_trl_is_inside_the_pyproject_pin():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = [d for d in deps if re.match(r"trl\b", d)]
    assert len(pins) == 1, f"expected one trl requirement in pyproject.toml, found {pins}"
    spec = SpecifierSet(pins[0].removeprefix("trl").strip())
    installed = Version(version("trl"))
    assert installed in spec, f"installed trl {installed} is outside the pin {pins[0]!r}: run this file, then move the pin"
    upper = [s for s in spec if s.operator == "<"]
    assert upper and Version(upper[0].version).release[:2] == (installed.major, installed.minor + 1), (
        f"the pin {pins[0]!r} must stop at the next minor (the seams are private and change between minors)"
    )


def test_seam_check_names_the_seam_that_moved(monkeypatch):
    """The meta-test: a seam taken away, or a tuple position moved, fails through `check_seam` with the seam's name."""
    by_name = {s.name: s for s in SEAMS}

    monkeypatch.delattr(GRPOTrainer, "_generate_single_turn")
    with pytest.raises(SeamMoved) as err:
        check_seam(by_name["GRPOTrainer._generate_single_turn"])
    assert str(err.value).startswith(
        "TRL seam moved: GRPOTrainer._generate_single_turn (used by moon_rl/trainers/grpo/trainer.py: "
        "MoonGRPOTrainer._generate_single_turn)"
    )
    assert "has no attribute '_generate_single_turn'" in str(err.value)
    monkeypatch.undo()

    original = GRPOTrainer._generate

    def images_moved_first(self, prompts):  # a TRL that returned (images, prompt_ids, ...) instead
        out = original(self, prompts)
        return (out[6], *out[:6], *out[7:])

    monkeypatch.setattr(GRPOTrainer, "_generate", images_moved_first)
    with pytest.raises(SeamMoved, match=r"^TRL seam moved: GRPOTrainer\._generate \(used by moon_rl/trainers/grpo/trainer\.py: "
                       r"MoonGRPOTrainer\._generate\).*moon-rl reads out\[0\] as the prompt ids"):
        check_seam(by_name["GRPOTrainer._generate"])
