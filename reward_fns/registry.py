"""Resolve reward specs (`NAME[(k=v, ...)][=WEIGHT]`) to TRL reward callables and weights.

NAME is looked up in this order:
  1. `BUILTINS`, the explicit table below;
  2. `path/to/file.py:function`: a file the user names (loaded only when given explicitly: it is code
     the user runs, never discovered);
  3. `package.module:function`: an importable module;
  4. an entry point named NAME in the group `moon_rl.rewards`, declared by an installed package:
         [project.entry-points."moon_rl.rewards"]
         brand_match = "my_pkg.rewards:brand_match"
An unknown NAME fails with the list of available rewards.

Arguments in parentheses are YAML scalars (`attribute_f1(normalize=false, synonyms=syn.yaml)`). For a
built-in they go to its factory; for a custom NAME, parentheses mean the object is a factory to call
with them (`my.mod:make_reward(threshold=0.5)`; `my.mod:make_reward()` calls it with none). In YAML the
same is a block: `{name: attribute_f1, weight: 1.0, args: {normalize: true}}`.

Rewards loaded from a file work in this process; a multi-process setup (async rollout workers) has to
pickle them by module name, so ship such rewards in a package instead.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reward_fns.attributes import AttributeChoice, AttributeF1
from reward_fns.category import CategoryReward
from reward_fns.errors import RewardError
from reward_fns.format import FormatReward
from reward_fns.identifier_format import IdentifierFormatReward
from reward_fns.grounding import GroundedReasoningReward
from reward_fns.length import OverlongReward
from reward_fns.pairwise import PairwiseChoiceReward
from reward_fns.retrieval import RetrievalReward

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "available_rewards", "parse_spec", "resolve_reward", "resolve_rewards"]

ENTRY_POINT_GROUP = "moon_rl.rewards"

# name -> factory; factory(**args) returns a reward whose __name__ is the name.
BUILTINS: dict[str, Callable[..., Callable]] = {
    "format": FormatReward,
    "identifier_format": IdentifierFormatReward,
    "attribute_f1": AttributeF1,
    "attribute_choice": AttributeChoice,
    "category": CategoryReward,
    "retrieval": RetrievalReward,
    "grounded_reasoning": GroundedReasoningReward,
    "overlong": OverlongReward,
    "pairwise_choice": PairwiseChoiceReward,
}

_SPEC = re.compile(r"^\s*(?P<name>[^()]+?)\s*(?:\((?P<args>.*)\))?\s*(?:=\s*(?P<weight>[^()=]+?))?\s*$", re.DOTALL)
_BLOCK_KEYS = ("name", "weight", "args")


# ------------------------------------------------------------------------------------------- parsing


def _split_args(text: str) -> list[str]:
    """Split `a=1, b=[x, y], c='p,q'` on the commas that are not inside brackets or quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


def _parse_args(text: str, spec: str) -> dict[str, Any]:
    import yaml

    args = {}
    for part in _split_args(text):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise RewardError(f"reward spec {spec!r}: argument {part!r} is not of the form name=value")
        try:
            args[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise RewardError(f"reward spec {spec!r}: cannot read the value of {key.strip()!r}: {err}") from None
    return args


def _parse_weight(raw: Any, where: str) -> float:
    try:
        weight = float(raw)
    except (TypeError, ValueError):
        raise RewardError(f"{where}: weight {raw!r} is not a number (write NAME=WEIGHT, e.g. format=0.5)") from None
    if not math.isfinite(weight):
        raise RewardError(f"{where}: weight must be finite, got {raw!r}")
    return weight


def parse_spec(spec: str) -> tuple[str, dict[str, Any] | None, float]:
    """Split `NAME[(k=v, ...)][=WEIGHT]` into (name, args or None when no parentheses, weight).

    >>> parse_spec("attribute_f1(normalize=false)=2")
    ('attribute_f1', {'normalize': False}, 2.0)
    >>> parse_spec("my_pkg.rewards:fn")
    ('my_pkg.rewards:fn', None, 1.0)
    """
    match = _SPEC.match(spec or "")
    if not match:
        raise RewardError(
            f"reward spec {spec!r}: expected NAME[(arg=value, ...)][=WEIGHT], e.g. 'format=0.5' or "
            "'attribute_f1(normalize=true)=1.0'"
        )
    args = None if match.group("args") is None else _parse_args(match.group("args"), spec)
    weight = 1.0 if match.group("weight") is None else _parse_weight(match.group("weight"), f"reward spec {spec!r}")
    return match.group("name"), args, weight


# ----------------------------------------------------------------------------------------- resolving


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no docstring)"


def available_rewards() -> dict[str, str]:
    """Every reward NAME usable in a spec (built-ins, then installed plug-ins) -> its one-line doc."""
    out = {name: _first_doc_line(factory) for name, factory in BUILTINS.items()}
    for name, ep in sorted(_entry_points().items()):
        if name in out:
            continue  # built-ins win; `rewards list` shows the built-in
        try:
            out[name] = f"[{ep.value}] " + _first_doc_line(ep.load())
        except Exception as err:  # a broken plug-in must not hide the others
            out[name] = f"[{ep.value}] (fails to load: {type(err).__name__}: {err})"
    return out


def _unknown(name: str) -> RewardError:
    names = ", ".join(available_rewards())
    return RewardError(
        f"unknown reward {name!r}; available: {names}. A custom reward is 'package.module:function' or "
        "'path/to/file.py:function'"
    )


def _load_file(path_text: str, attr: str, spec: str) -> Any:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise RewardError(f"reward spec {spec!r}: file {path} does not exist")
    # A unique, stable module name per file, so two files called rewards.py do not collide.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"moon_rl_user_rewards_{stem}_{digest}"
    module = sys.modules.get(module_name)
    if module is None:
        file_spec = importlib.util.spec_from_file_location(module_name, path)
        if file_spec is None or file_spec.loader is None:
            raise RewardError(f"reward spec {spec!r}: {path} is not a Python file")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[module_name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[module_name]
            raise RewardError(f"reward spec {spec!r}: running {path} failed: {type(err).__name__}: {err}") from err
    return _get_attr(module, attr, str(path), spec)


def _load_module(module_name: str, attr: str, spec: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RewardError(
            f"reward spec {spec!r}: cannot import module {module_name!r} ({err}); is it installed or on PYTHONPATH? "
            "For a file, write 'path/to/file.py:function'"
        ) from err
    return _get_attr(module, attr, module_name, spec)


def _get_attr(module: Any, attr: str, where: str, spec: str) -> Any:
    if not hasattr(module, attr):
        callables = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise RewardError(f"reward spec {spec!r}: {where} has no {attr!r}; callables there: {callables}")
    return getattr(module, attr)


def _instantiate(name: str, obj: Any, args: dict[str, Any] | None, spec: str) -> Callable:
    if args is not None:
        try:
            obj = obj(**args)
        except TypeError as err:
            try:
                params = list(inspect.signature(obj).parameters)
            except (TypeError, ValueError):
                params = "?"
            raise RewardError(
                f"reward {name!r} ({spec!r}): bad arguments {args}: {err}; its parameters: {params}"
            ) from None
    if not callable(obj):
        raise RewardError(f"reward {name!r} ({spec!r}) is a {type(obj).__name__}, not a callable reward function")
    return obj


def _lookup(name: str, spec: str) -> Any:
    """The object NAME refers to (a factory for built-ins; a reward or a factory otherwise)."""
    if name in BUILTINS:
        return BUILTINS[name]
    if ":" in name:
        target, _, attr = name.rpartition(":")
        if not target or not attr.isidentifier():
            raise RewardError(f"reward spec {spec!r}: expected 'module:function' or 'file.py:function'")
        if target.endswith(".py") or "/" in target or "\\" in target:
            return _load_file(target, attr, spec)
        return _load_module(target, attr, spec)
    eps = _entry_points()
    if name in eps:
        try:
            return eps[name].load()
        except Exception as err:
            raise RewardError(
                f"reward {name!r}: entry point '{eps[name].value}' in group {ENTRY_POINT_GROUP!r} fails to load: "
                f"{type(err).__name__}: {err}"
            ) from err
    raise _unknown(name)


def resolve_reward(spec: str) -> tuple[Callable, float]:
    """A reward spec string -> (reward callable, weight).

    >>> fn, weight = resolve_reward("attribute_f1(normalize=true)=2.0")
    >>> fn.__name__, weight
    ('attribute_f1', 2.0)
    """
    name, args, weight = parse_spec(spec)
    obj = _lookup(name, spec)
    if name in BUILTINS and args is None:
        args = {}  # built-ins are factories: a bare name means default parameters
    return _instantiate(name, obj, args, spec), weight


def _resolve_block(block: Mapping[str, Any], index: int) -> tuple[Callable, float]:
    where = f"rewards[{index}]"
    unknown = sorted(set(block) - set(_BLOCK_KEYS))
    if unknown:
        raise RewardError(f"{where}: unknown key(s) {unknown}; a reward block has {list(_BLOCK_KEYS)}")
    name = block.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RewardError(f"{where}: 'name' must be a reward name, e.g. {{name: attribute_f1, weight: 1.0}}")
    args = block.get("args")
    if args is not None and not isinstance(args, Mapping):
        raise RewardError(f"{where}: 'args' must be a mapping of parameter -> value, got {args!r}")
    if "(" in name:
        raise RewardError(f"{where}: put arguments under 'args', not in the name {name!r}")
    weight = _parse_weight(block.get("weight", 1.0), where)
    obj = _lookup(name.strip(), f"{where} {name}")
    if name.strip() in BUILTINS and args is None:
        args = {}
    return _instantiate(name.strip(), obj, None if args is None else dict(args), f"{where} {name}"), weight


def resolve_rewards(specs: list[str] | list[Mapping[str, Any]]) -> tuple[list[Callable], list[float]]:
    """Resolve many specs (strings, or YAML blocks `{name, weight, args}`) -> (rewards, weights).

    Two rewards with the same `__name__` would log into the same metric, so that fails.
    """
    if not specs:
        raise RewardError(f"no rewards given; pass at least one, e.g. --reward format --reward attribute_f1 "
                        f"(available: {', '.join(available_rewards())})")
    funcs, weights, seen = [], [], {}
    for index, spec in enumerate(specs):
        if isinstance(spec, str):
            fn, weight = resolve_reward(spec)
        elif isinstance(spec, Mapping):
            fn, weight = _resolve_block(spec, index)
        else:
            raise RewardError(f"rewards[{index}]: expected a spec string or a {{name, weight, args}} block, got {spec!r}")
        metric = getattr(fn, "__name__", type(fn).__name__)
        if metric in seen:
            raise RewardError(
                f"rewards {seen[metric]!r} and {spec!r} both log as {metric!r}; use one of them (with a combined "
                "weight) or give the custom function another name"
            )
        seen[metric] = spec
        funcs.append(fn)
        weights.append(weight)
    return funcs, weights
