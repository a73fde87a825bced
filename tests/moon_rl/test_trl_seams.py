"""Every private TRL / transformers-Trainer seam moon-rl relies on, in one table: the file to read when TRL moves.

moon-rl's trainers subclass TRL's and override or read private parts of them (method names, the signatures they
call, the tuple position they read, the dict keys they read, attributes TRL sets in `__init__`). TRL changes
those without notice, hence the pin in pyproject.toml (`trl>=1.16,<1.17`). To upgrade: widen the pin, run

    nice -n 10 .venv/bin/python -m pytest -q tests/moon_rl/test_trl_seams.py

and each failure starts with `TRL seam moved: <seam> (used by <moon-rl file: code>)` and says what is no
longer true; adapt that code, then run tests/moon_rl/test_grpo_equivalence.py, test_trl_compat.py and
test_grpo_groups.py, which check behaviour (this file checks shapes only: no training, no model).

How each seam is checked, cheapest that is still true:
- existence and signature (`inspect.signature`): the parameters moon-rl passes, by name or position;
- a tiny run of TRL's own code on stubs where moon-rl reads a position or a structure: `GRPOTrainer._generate`
  runs on a stub trainer (its tokenizer and generator replaced by sentinels) and the test checks that out[0],
  out[1], out[6] are the prompt ids, completion ids and images it was handed; `_get_per_token_logps_and_entropies`
  runs on a stub model and must return (logps, entropies, aux) in that order; `_get_train_sampler`,
  `RepeatSampler`, `pad`, `split_pixel_values_by_grid`, ... run on a few numbers;
- a read of TRL's source (`inspect.getsource`, whitespace ignored, or its syntax tree) where what moon-rl relies
  on is TRL's *own* call or code: who calls the overridden method, the keys of the dict it returns, the way it
  builds the forward inputs that `rollout_forward_inputs` copies.
`test_seam_check_names_the_seam_that_moved` shows a removed method and a reordered return tuple failing with
the seam's name.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import re
import textwrap
import tomllib
from collections import defaultdict
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers import Trainer
from trl import GRPOTrainer, SFTTrainer

ROOT = Path(__file__).resolve().parents[2]
GRPO = "moon_rl/trainers/grpo/trainer.py"
ROLLOUT = "moon_rl/trainers/grpo/rollout_embeddings.py"
SFT = "moon_rl/trainers/sft/trainer.py"
COMMON = "moon_rl/trainers/common.py"
SAMPLING = "moon_rl/trainers/sampling.py"


class Seam(NamedTuple):
    name: str  # the TRL / transformers thing, e.g. "GRPOTrainer._generate"
    used_by: str  # "file: Qualname, Qualname; file: Qualname" (checked by `test_seam_table_points_at_live_code`)
    checks: str  # what is checked, in words
    check: Callable[[], None]  # raises (AssertionError, AttributeError, ...) when the seam moved


class SeamMoved(AssertionError):
    pass


def check_seam(seam: Seam) -> None:
    """Run one seam's check; any failure becomes one message that names the seam and where moon-rl uses it."""
    try:
        seam.check()
    except Exception as err:  # noqa: BLE001 - a missing attribute, a changed signature, a failed run: all say "moved"
        raise SeamMoved(
            f"TRL seam moved: {seam.name} (used by {seam.used_by}): {type(err).__name__}: {err} "
            f"[checked: {seam.checks}] (trl {version('trl')}, transformers {version('transformers')})"
        ) from err


# ---- helpers: look at TRL without running a trainer ---------------------------------------------------------


def member(owner, name: str):
    """`owner.name`, or an error naming what is missing (a class, a module)."""
    if not hasattr(owner, name):
        raise AttributeError(f"{getattr(owner, '__name__', owner)} has no attribute {name!r}")
    return getattr(owner, name)


def params(fn, names: tuple[str, ...] = (), positional: tuple[str, ...] = (), var_keyword: bool = False) -> None:
    """`fn` accepts the keyword `names`, takes `positional` first (after self), and (if asked) **kwargs."""
    sig = inspect.signature(inspect.unwrap(fn))
    ps = sig.parameters
    missing = [n for n in names if n not in ps]
    if missing:
        raise AssertionError(f"signature {sig} has no parameter(s) {missing}")
    order = [n for n in ps if n != "self"][: len(positional)]
    if positional and order != list(positional):
        raise AssertionError(f"signature {sig}: the first positional parameters are {order}, moon-rl passes {list(positional)}")
    if var_keyword and not any(p.kind is p.VAR_KEYWORD for p in ps.values()):
        raise AssertionError(f"signature {sig} takes no **kwargs")


@functools.cache
def source_of(obj) -> str:
    return textwrap.dedent(inspect.getsource(inspect.unwrap(obj)))


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def contains(obj, *snippets: str) -> None:
    """TRL's source of `obj` still contains each snippet (whitespace ignored, so a reformat does not count)."""
    code = squeeze(source_of(obj))
    missing = [s for s in snippets if squeeze(s) not in code]
    if missing:
        raise AssertionError(f"{obj.__qualname__} no longer contains {missing}")


def sets_attribute(cls: type, attr: str) -> None:
    """Some class of `cls.__mro__` assigns `self.<attr> = ...` (the attribute moon-rl reads exists)."""
    pattern = re.compile(rf"self\.{re.escape(attr)}\s*(?::[^=\n]+)?=(?!=)")
    for klass in cls.__mro__[:-1]:
        if pattern.search(source_of(klass)):
            return
    raise AssertionError(f"no class of {[k.__name__ for k in cls.__mro__[:-1]]} assigns self.{attr}")


def dict_keys_returned(fn, var: str = "output") -> set[str]:
    """String keys of `var = {...}` and `var["k"] = ...` in `fn`'s source, when `fn` ends with `return var`."""
    tree = ast.parse(source_of(fn))
    if not any(isinstance(n, ast.Return) and isinstance(n.value, ast.Name) and n.value.id == var for n in ast.walk(tree)):
        raise AssertionError(f"{fn.__qualname__} no longer returns `{var}`")
    keys: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == var and isinstance(node.value, ast.Dict):
                keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id == var:
                if isinstance(target.slice, ast.Constant):
                    keys.add(target.slice.value)
    return keys


def require(wanted: set[str], got: set[str], what: str) -> None:
    if not wanted <= got:
        raise AssertionError(f"{what} lack {sorted(wanted - got)} (have {sorted(got)})")


def unpacked_from_call(fn, method: str) -> list[str]:
    """Names `fn` unpacks the result of `self.<method>(...)` into: `(a, b, ...) = self.method(...)`."""
    for node in ast.walk(ast.parse(source_of(fn))):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == method and isinstance(node.targets[0], ast.Tuple)):
            return [e.id if isinstance(e, ast.Name) else ast.unparse(e) for e in node.targets[0].elts]
    raise AssertionError(f"{fn.__qualname__} no longer unpacks `self.{method}(...)` into a tuple")


def trl_utils():
    return importlib.import_module("trl.trainer.utils")


# ---- checks that run TRL's code on stubs -----------------------------------------------------------------------


def check_generate() -> None:
    """Run TRL's `_generate` on a stub trainer; out[0], out[1], out[6] must be what moon-rl reads them as."""
    method = member(GRPOTrainer, "_generate")
    params(method, positional=("prompts",))
    prompt_ids, completion_ids, images = [[11, 12]], [[13, 2]], [["<image>"]]
    stub = SimpleNamespace(
        accelerator=SimpleNamespace(device="cpu", gather=lambda t: t, is_main_process=True),
        model=SimpleNamespace(training=True), state=SimpleNamespace(num_input_tokens_seen=0, global_step=0),
        args=SimpleNamespace(report_to=[]), rollout_func=None, tools=None, use_vllm=False, environment_factories=None,
        num_generations=1, num_generations_eval=1, eos_token_ids=[2], _tokenizer=SimpleNamespace(pad_token_id=0),
        processing_class=SimpleNamespace(batch_decode=lambda ids, **kw: ["text"] * len(ids)),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _tokenize_prompts=lambda prompts: (prompt_ids, images, {}),
        _generate_single_turn=lambda *a, **kw: (completion_ids, None),
    )
    out = method(stub, ["a plain text prompt"])
    if not isinstance(out, tuple) or len(out) < 7:
        raise AssertionError(f"returned {type(out).__name__} of length {len(out)}; moon-rl reads positions 0, 1 and 6")
    if out[0] is not prompt_ids or out[1] != completion_ids or out[6] is not images:
        raise AssertionError(
            f"moon-rl reads out[0] as the prompt ids, out[1] as the completion ids, out[6] as the images; "
            f"the stub run returned out[0]={out[0]!r}, out[1]={out[1]!r}, out[6]={out[6]!r}"
        )
    names = unpacked_from_call(GRPOTrainer._generate_and_score_completions, "_generate")
    if len(names) < 7 or "prompt_ids" not in names[0] or "completion_ids" not in names[1] or names[6] != "images":
        raise AssertionError(f"_generate_and_score_completions unpacks `self._generate(prompts)` into {names}")


def check_logps() -> None:
    """Run TRL's `_get_per_token_logps_and_entropies` on a stub model: (logps, entropies, aux), chunked by batch_size."""
    method = member(GRPOTrainer, "_get_per_token_logps_and_entropies")
    params(method, positional=("model", "input_ids", "attention_mask", "logits_to_keep"),
           names=("batch_size", "compute_entropy", "compute_aux_loss", "pixel_values", "image_grid_thw", "num_images",
                  "token_type_ids", "mm_token_type_ids"))

    def model(input_ids, attention_mask, **kwargs):
        rows = input_ids.float() * 10  # (B, L), depends on the row, so the chunks' order shows
        return SimpleNamespace(log_probs=rows, entropy=-rows, aux_loss=torch.tensor(7.0))

    stub = SimpleNamespace(accelerator=SimpleNamespace(autocast=contextlib.nullcontext, is_main_process=True))
    ids = torch.arange(10).view(2, 5)
    out = method(stub, model, ids, torch.ones_like(ids), 3, batch_size=1, compute_entropy=True, compute_aux_loss=True)
    if not isinstance(out, tuple) or len(out) != 3:
        raise AssertionError(f"returned {type(out).__name__} of length {len(out)}; moon-rl unpacks (logps, entropies, aux)")
    expected = ids[:, -3:].float() * 10
    if not (torch.equal(out[0], expected) and torch.equal(out[1], -expected) and float(out[2]) == 7.0):
        raise AssertionError(f"expected (logps, entropies, aux) = ({expected}, {-expected}, 7.0), got {out}")
    plain = method(stub, model, ids, torch.ones_like(ids), 3)
    if plain[1] is not None or plain[2] is not None:
        raise AssertionError("without compute_entropy / compute_aux_loss, entropies and aux must be None (moon-rl tests `is not None`)")


def check_train_sampler() -> None:
    """TRL's `_get_train_sampler` builds the `RepeatSampler` whose arguments `GroupRepeatSampler` is given."""
    method = member(GRPOTrainer, "_get_train_sampler")
    params(method, positional=("dataset",))
    stub = SimpleNamespace(train_dataset=list(range(12)), num_generations=2, num_iterations=3, shuffle_dataset=False,
                           args=SimpleNamespace(generation_batch_size=8, steps_per_generation=2, seed=5))
    sampler = method(stub, None)
    got = {k: getattr(sampler, k, None) for k in ("mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed")}
    want = dict(mini_repeat_count=2, batch_size=4, repeat_count=6, shuffle=False, seed=5)
    if type(sampler) is not trl_utils().RepeatSampler or got != want:
        raise AssertionError(
            f"moon-rl builds RepeatSampler(mini_repeat_count=num_generations, batch_size=generation_batch_size // "
            f"num_generations, repeat_count=num_iterations * steps_per_generation, shuffle=shuffle_dataset, seed=args.seed) "
            f"= {want}; TRL built {type(sampler).__name__} {got}"
        )
    contains(GRPOTrainer.get_train_dataloader, "sampler_fn=self._get_train_sampler")


def check_repeat_sampler() -> None:
    cls = member(trl_utils(), "RepeatSampler")
    params(cls.__init__, names=("data_source", "mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed"))
    sampler = cls(data_source=list(range(4)), mini_repeat_count=2, batch_size=2, repeat_count=2, shuffle=False, seed=0)
    for attr in ("mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed"):
        member(sampler, attr)
    # GroupRepeatSampler.__iter__ copies this nesting: chunk of batch_size rows -> repeat_count -> row -> mini_repeat_count
    want = [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]
    if list(sampler) != want or len(sampler) != len(want):
        raise AssertionError(f"order {list(sampler)} (len {len(sampler)}), GroupRepeatSampler copies {want}")


def check_prepare_inputs_carries_extra_keys() -> None:
    """moon-rl adds (N,) tensors to the scoring output; TRL's shuffle and split must carry them with the rows."""
    contains(GRPOTrainer._prepare_inputs, "self._generate_and_score_completions(generation_batch)",
             "shuffle_sequence_dict(generation_batch)", "split_tensor_dict(generation_batch,self.args.steps_per_generation)")
    utils = trl_utils()
    batch = {"prompt_ids": torch.arange(8).view(4, 2), "moon_group_ids": torch.tensor([0, 1, 2, 3]), "num_images": None}
    for chunk in member(utils, "split_tensor_dict")(member(utils, "shuffle_sequence_dict")(batch), 2):
        if "moon_group_ids" not in chunk or not torch.equal(chunk["moon_group_ids"] * 2, chunk["prompt_ids"][:, 0]):
            raise AssertionError(f"an extra tensor key was dropped or shuffled apart from its rows: {chunk}")


def check_pad() -> None:
    pad = member(trl_utils(), "pad")
    params(pad, names=("padding_value", "padding_side", "pad_to_multiple_of"))
    seqs = [torch.tensor([1]), torch.tensor([2, 3])]
    left = pad(seqs, padding_value=0, padding_side="left", pad_to_multiple_of=None).tolist()
    right = pad(seqs, padding_value=9, padding_side="right", pad_to_multiple_of=4).tolist()
    if left != [[0, 1], [2, 3]] or right != [[1, 9, 9, 9], [2, 3, 9, 9]]:
        raise AssertionError(f"left {left}, right (multiple of 4) {right}")


def check_split_pixel_values() -> None:
    split = member(trl_utils(), "split_pixel_values_by_grid")
    # three rows, the middle one without an image (a query row): moon-rl slices the per-row lists
    pixel_values, grid = torch.arange(6.0).view(3, 2), torch.tensor([[1, 1, 2], [1, 1, 1]])
    out = split({"pixel_values": pixel_values, "image_grid_thw": grid, "num_images": [1, 0, 1]})
    rows, grids = out["pixel_values"], out["image_grid_thw"]
    if [r.size(0) for r in rows] != [2, 0, 1] or [g.size(0) for g in grids] != [1, 0, 1]:
        raise AssertionError(f"per-row pixel_values {[tuple(r.shape) for r in rows]}, image_grid_thw {[tuple(g.shape) for g in grids]}")


def check_get_config_model_id() -> None:
    fn = member(trl_utils(), "get_config_model_id")
    if fn(SimpleNamespace(_name_or_path="org/model")) != "org/model":
        raise AssertionError("does not return the config's _name_or_path")


def check_disable_gradient_checkpointing() -> None:
    fn = member(importlib.import_module("trl.models.utils"), "disable_gradient_checkpointing")
    params(fn, positional=("model", "gradient_checkpointing_kwargs"))
    calls = []
    model = SimpleNamespace(is_gradient_checkpointing=True, gradient_checkpointing_disable=lambda: calls.append("off"),
                            gradient_checkpointing_enable=lambda *a, **kw: calls.append(("on", a, kw)))
    with fn(model, {"use_reentrant": False}):
        calls.append("inside")
    passed = [*calls[2][1], *calls[2][2].values()] if len(calls) == 3 else []
    if calls[:2] != ["off", "inside"] or {"use_reentrant": False} not in passed:
        raise AssertionError(f"not a context manager that turns checkpointing off and back on with the kwargs: {calls}")


def check_sync_ref_callback() -> None:
    cls = member(importlib.import_module("trl.trainer.callbacks"), "SyncRefModelCallback")
    params(cls.__init__, names=("ref_model", "accelerator"))
    ref = object()
    callback = cls(ref_model=ref, accelerator=None)
    if member(callback, "ref_model") is not ref or member(callback, "accelerator") is not None:
        raise AssertionError("does not keep ref_model / accelerator as attributes (moon-rl rebuilds the callback from them)")
    params(cls.on_step_end, positional=("args", "state", "control"), var_keyword=True)
    contains(cls.on_step_end, 'kwargs["model"]')
    contains(GRPOTrainer.__init__, "SyncRefModelCallback(ref_model=self.ref_model,accelerator=self.accelerator)")


def check_rotation() -> None:
    """moon-rl sets args.save_total_limit=None around the parent's `_save_checkpoint` so HF does not rotate."""
    contains(member(Trainer, "_save_checkpoint"), "save_total_limit=self.args.save_total_limit")
    rotate = member(importlib.import_module("transformers.trainer_utils"), "rotate_checkpoints")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for step in (1, 2, 3):
            (Path(tmp) / f"checkpoint-{step}").mkdir()
        rotate(output_dir=tmp, save_total_limit=None)
        left = sorted(p.name for p in Path(tmp).iterdir())
    if left != ["checkpoint-1", "checkpoint-2", "checkpoint-3"]:
        raise AssertionError(f"save_total_limit=None deleted checkpoints: {left} left")
    for cls in (GRPOTrainer, SFTTrainer):
        if "_save_checkpoint" in cls.__dict__:
            contains(cls._save_checkpoint, "super()._save_checkpoint(model,trial)")


def check_overlong() -> None:
    fn = member(importlib.import_module("trl.rewards.other_rewards"), "get_soft_overlong_punishment")
    params(fn, names=("max_completion_len", "soft_punish_cache"))
    reward = fn(max_completion_len=10, soft_punish_cache=5)
    scores = reward([[1] * 4, [1] * 12])
    if len(scores) != 2 or scores[0] != 0 or scores[1] >= 0:
        raise AssertionError(f"scores {scores} for lengths 4 and 12 (limit 10, cache 5)")
    contains(GRPOTrainer._calculate_rewards, "completion_ids=completion_ids_list")


def check_vllm_serve() -> None:
    module = importlib.import_module("trl.scripts.vllm_serve")
    params(member(module, "main"), positional=("script_args", "extra_args"))
    import dataclasses

    fields = {f.name for f in dataclasses.fields(member(module, "ScriptArguments"))}
    wanted = {"model", "host", "port", "tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype"}
    if not wanted <= fields:
        raise AssertionError(f"ScriptArguments has no {sorted(wanted - fields)}")


def check_metrics(cls: type) -> Callable[[], None]:
    def check() -> None:
        contains(cls, 'self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}')  # new keys just append
        contains(member(cls, "log"), "self._metrics[mode].items()")  # averaged into the logs
    return check


def attribute(cls: type, attr: str) -> Callable[[], None]:
    return lambda: sets_attribute(cls, attr)


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
    Seam("trl.models.utils.disable_gradient_checkpointing", f"{GRPO}: MoonGRPOTrainer._rollout_embeddings",
         "a context manager (model, gradient_checkpointing_kwargs) (run on a stub model)", check_disable_gradient_checkpointing),
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
