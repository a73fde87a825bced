"""Config flows one way: dataclass fields are the single source of truth; a YAML file and
`--set key=value` flags only set them. Unknown keys and wrong types fail with the list of valid keys.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from moon_rl.errors import MoonError

T = TypeVar("T")


def field_names(cls: type) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls) if f.init)


def _close_matches(key: str, names: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(key, names, n=3)
    return f" Did you mean {', '.join(near)}?" if near else ""


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a YAML file" if path.is_dir() else "does not exist"
        raise MoonError(f"config file {path} {what}")
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        raise MoonError(f"{path}: a binary file, not a YAML config; pass a text file of config fields (see configs/*.yaml)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise MoonError(f"{path}: not UTF-8 text (byte {err.start}, line {line}); save the config as UTF-8 YAML") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise MoonError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise MoonError(f"{path}: expected a mapping of config fields at the top level, got {type(data).__name__}")
    return data


def parse_set_overrides(items: list[str] | None) -> dict[str, Any]:
    """`["learning_rate=1e-4", "bf16=true"]` -> {"learning_rate": 1e-4, "bf16": True} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MoonError(f"--set {item!r}: expected KEY=VALUE, for example --set learning_rate=1e-4")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, str):
            try:  # YAML 1.1 leaves `1e-4` a string
                parsed = float(parsed) if any(c in parsed for c in "eE.") else int(parsed)
            except ValueError:
                pass
        out[key.strip()] = parsed
    return out


def _conforms(value: Any, hint: Any) -> bool | None:
    """Does `value` fit the type hint? True / False, or None when the hint is beyond this light check
    (classes, callables, ...: left to the dataclass' own __post_init__)."""
    import enum
    import types

    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_conforms(value, arg) for arg in typing.get_args(hint)]
        return True if True in results else (None if None in results else False)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if not isinstance(value, list | tuple):
            # One item where a list is expected (`rewards: format`): several configs wrap it themselves.
            return None if len(args) == 1 and _conforms(value, args[0]) else False
        if len(args) != 1:
            return True
        results = [_conforms(item, args[0]) for item in value]
        return False if False in results else (None if None in results else True)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {m.value for m in hint}
    return None


def _type_name(hint: Any) -> str:
    import types

    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _check_type(cls: type, name: str, value: Any, source: str) -> Any:
    """Type check against the field's annotation; coerces int -> float (and YAML 1.1's `1e-4` string) where
    the field is a float. None is accepted where the annotation or the default allows it."""
    hint = typing.get_type_hints(cls).get(name)
    if hint is None:
        return value
    if value is None:
        default = next((f.default for f in dataclasses.fields(cls) if f.name == name), None)
        if default is None or _conforms(None, hint) is not False:
            return value
        raise MoonError(f"{source}: field '{name}' expects {_type_name(hint)}, got null")
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) else (hint,)
    if float in allowed and isinstance(value, str) and not _conforms(value, hint):
        # YAML 1.1 reads `1e-4` (no dot) as a string; accept it as the number the user meant.
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) and _conforms(value, hint) is False and _conforms("no", hint) is not False:
        # YAML 1.1 reads `no`/`off` as False and `yes`/`on` as True; for a string or choice field such as
        # `save_strategy: no` the word was meant.
        value = "no" if value is False else "yes"
    if _conforms(value, hint) is False:
        what = "a boolean " if isinstance(value, bool) else ""
        raise MoonError(f"{source}: field '{name}' expects {_type_name(hint)}, got {what}{value!r}")
    if float in allowed and int not in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# ---- ranges -------------------------------------------------------------------------------------------
# Checked on every value a user sets (YAML, --set, flags), whichever config it lands in: TRL and HF accept
# many out-of-range values silently (`max_steps: -3` trains whole epochs, a negative learning rate ascends).
# A field missing here gets the generic rule below (finite numbers only).

_AT_LEAST_1 = (
    "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "eval_accumulation_steps",
    "embedding_dim", "fusion_heads", "num_iterations", "lora_r", "max_length", "max_prompt_length",
    "max_completion_length", "generation_batch_size", "steps_per_generation", "torch_empty_cache_steps",
    "vllm_tensor_parallel_size", "ref_model_sync_steps", "batch_size", "max_new_tokens", "knn_k", "chunk_size", "curve_k", "dataset_num_proc", "dataloader_prefetch_factor",
    "save_total_limit", "num_generations_eval", "vllm_max_model_length",
)  # fmt: skip
_AT_LEAST_0 = (
    "warmup_steps", "weight_decay", "max_grad_norm", "dataloader_num_workers", "contrastive_weight", "beta", "epsilon",
    "epsilon_high", "top_k", "residual_source_layer", "adam_epsilon", "eval_delay", "neftune_noise_alpha", "delta",
    "entropy_coef", "max_tool_calling_iterations", "learning_rate",
    "max_products", "max_queries", "max_attribute_records",  # eval caps: 0 means no cap
)  # fmt: skip
_POSITIVE = (
    "num_train_epochs", "logging_steps", "save_steps", "eval_steps", "contrastive_temperature", "lora_alpha",
    "temperature", "repetition_penalty", "vllm_server_timeout",
)  # fmt: skip
_UNIT = ("lora_dropout", "label_smoothing_factor", "adam_beta1", "adam_beta2")  # [0, 1)
_FRACTION = ("top_p", "min_p", "vllm_gpu_memory_utilization", "top_entropy_quantile", "warmup_ratio")  # [0, 1]


def _rule(name: str) -> tuple[Any, str] | None:
    """(predicate, what it asks for) for a field, or None when any finite number will do."""
    if name == "max_steps":
        return (lambda v: v == -1 or v >= 1), ">= 1 (or -1: train for num_train_epochs)"
    if name == "num_generations":
        return (lambda v: v >= 2), ">= 2 (GRPO compares rollouts of one prompt)"
    if name in ("seed", "data_seed"):
        return (lambda v: 0 <= v < 2**32), "between 0 and 2**32 - 1"
    if name in ("vllm_server_port", "vllm_group_port"):
        return (lambda v: 1 <= v <= 65535), "a port number between 1 and 65535"
    if name in _AT_LEAST_1:
        return (lambda v: v >= 1), ">= 1"
    if name in _AT_LEAST_0:
        return (lambda v: v >= 0), ">= 0"
    if name in _POSITIVE:
        return (lambda v: v > 0), "> 0"
    if name in _UNIT:
        return (lambda v: 0 <= v < 1), "in [0, 1)"
    if name in _FRACTION:
        return (lambda v: 0 <= v <= 1), "in [0, 1]"
    return None


def _check_range(name: str, value: Any, source: str) -> Any:
    """A number the user set for `name` is finite and inside the field's range (lists: every item)."""
    import math

    items = value if isinstance(value, list | tuple) else [value]
    rule = _rule(name)
    if name in ("ks", "residual_target_layers"):
        rule = ((lambda v: v >= 1), ">= 1") if name == "ks" else ((lambda v: v >= 0), ">= 0")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            continue
        where = "the command line" if source == "arguments" else source
        if not math.isfinite(item):
            raise MoonError(f"{where}: field '{name}' must be a finite number, got {item!r}")
        if rule is not None and not rule[0](item):
            raise MoonError(f"{where}: field '{name}' is out of range: {name} must be {rule[1]}, got {item!r}")
    return value


def _blame(cls: type, merged: dict[str, Any], message: str) -> str | None:
    """The one key whose value alone makes `cls` fail with `message` (None if none or several do)."""
    culprits = []
    for key, value in merged.items():
        try:
            cls(**{key: value})
        except (TypeError, ValueError) as err:
            if str(err) == message:
                culprits.append(key)
        except Exception:  # noqa: BLE001 - a lone key may fail for other reasons; it is then not the culprit
            pass
    return culprits[0] if len(culprits) == 1 else None


def build_config(cls: type[T], *sources: tuple[str, dict[str, Any]], **fixed: Any) -> T:
    """Build dataclass `cls` from (source_name, mapping) layers, later layers winning; `fixed` wins last.

    Every key is checked against the dataclass' fields before anything is built.
    """
    names = field_names(cls)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, mapping in (*sources, ("arguments", fixed)):
        for key, value in mapping.items():
            if key not in names:
                raise MoonError(
                    f"{source}: unknown config key '{key}'.{_close_matches(key, names)} "
                    f"Valid keys for {cls.__name__}: {', '.join(names)}"
                )
            merged[key] = _check_range(key, _check_type(cls, key, value, source), source)
            origin[key] = source
    try:
        return cls(**merged)
    except (TypeError, ValueError) as err:
        message = " ".join(str(err).split())  # one line
        key = _blame(cls, merged, str(err))
        if key is not None:
            raise MoonError(f"{origin[key]}: field '{key}' = {merged[key]!r} is invalid: {message}") from None
        raise MoonError(f"invalid {cls.__name__}: {message}") from None


def build_run_configs(
    config_cls: type[T],
    model_cls: type,
    yaml_path: str | Path | None,
    overrides: dict[str, Any] | None,
    flags: dict[str, Any],
    no_model_hint: str = "pass --model PATH_OR_HUB_ID or set 'model:' in the --config file",
) -> tuple[T, Any]:
    """(trainer config, model args) from a YAML file, `--set` overrides and explicit flags (later wins).

    One YAML describes a whole run: keys of `model_cls` go to the model args, keys of `config_cls` to the
    trainer config, a key of both (`trust_remote_code`) to both; anything else fails with the list of
    valid keys. Flags whose value is None are ignored (the option was not given).
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if yaml_path is not None:
        layers.append((str(yaml_path), read_yaml(yaml_path)))
    layers.append(("--set", dict(overrides or {})))
    layers.append(("arguments", {k: v for k, v in flags.items() if v is not None}))

    config_keys, model_keys = set(field_names(config_cls)), set(field_names(model_cls))
    valid = sorted(config_keys | model_keys)
    model_layers, config_layers = [], []
    for source, mapping in layers:
        unknown = [k for k in mapping if k not in config_keys and k not in model_keys]
        if unknown:
            raise MoonError(
                f"{source}: unknown config key '{unknown[0]}'.{_close_matches(unknown[0], valid)} Valid keys: {', '.join(valid)}"
            )
        model_layers.append((source, {k: v for k, v in mapping.items() if k in model_keys}))
        config_layers.append((source, {k: v for k, v in mapping.items() if k in config_keys}))

    if not any("model" in m for _, m in model_layers):
        raise MoonError(f"no model given: {no_model_hint}")
    if not any("output_dir" in m for _, m in config_layers):
        raise MoonError("no output folder given: pass --out DIR or set 'output_dir:' in the --config file")
    return build_config(config_cls, *config_layers), build_config(model_cls, *model_layers)
