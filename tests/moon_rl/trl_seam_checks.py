"""How the seams of tests/moon_rl/test_trl_seams.py are checked: the `Seam` record, `check_seam` (which turns
any failure into one message naming the seam), and the helpers and stub runs the table's checks call.

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
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import re
import textwrap
from collections import defaultdict
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import torch
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
