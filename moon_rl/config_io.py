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
        raise MoonError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise MoonError(f"{path}: not valid YAML: {err}") from None
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


def _check_type(cls: type, name: str, value: Any, source: str) -> Any:
    """Light type check for the common field types; coerces int -> float where the field is a float."""
    hints = typing.get_type_hints(cls)
    hint = hints.get(name)
    if hint is None or value is None:
        return value
    origin = typing.get_origin(hint)
    allowed = typing.get_args(hint) if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) else (hint,)
    simple = [a for a in allowed if a in (int, float, bool, str)]
    if not simple or len(simple) != len([a for a in allowed if a is not type(None)]):
        return value  # lists, dicts, enums, literals: leave to the dataclass' own __post_init__
    if isinstance(value, bool) and bool not in simple:
        raise MoonError(f"{source}: field '{name}' expects {hint}, got a boolean {value!r}")
    if float in simple and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if float in simple and isinstance(value, str):
        # YAML 1.1 reads `1e-4` (no dot) as a string; accept it as the number the user meant.
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, tuple(simple)):
        raise MoonError(f"{source}: field '{name}' expects {'/'.join(t.__name__ for t in simple)}, got {value!r}")
    return value


def build_config(cls: type[T], *sources: tuple[str, dict[str, Any]], **fixed: Any) -> T:
    """Build dataclass `cls` from (source_name, mapping) layers, later layers winning; `fixed` wins last.

    Every key is checked against the dataclass' fields before anything is built.
    """
    names = field_names(cls)
    merged: dict[str, Any] = {}
    for source, mapping in (*sources, ("arguments", fixed)):
        for key, value in mapping.items():
            if key not in names:
                raise MoonError(
                    f"{source}: unknown config key '{key}'.{_close_matches(key, names)} "
                    f"Valid keys for {cls.__name__}: {', '.join(names)}"
                )
            merged[key] = _check_type(cls, key, value, source)
    try:
        return cls(**merged)
    except (TypeError, ValueError) as err:
        raise MoonError(f"invalid {cls.__name__}: {err}") from None
