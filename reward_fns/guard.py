"""Enforce the reward contract during training: one finite float (or `None`) per completion.

`GuardedReward(fn, name, on_error)` wraps a reward for the GRPO trainer. TRL itself turns `None` into
NaN and then averages with `nansum`, so a reward that returns NaN by mistake would silently count as
"does not apply"; and an exception would stop training with no hint of which sample broke it.

  on_error="raise" (default): an exception, a wrong-length or wrong-type result, or a non-finite value
      raises `RewardError` naming the reward, the sample index (and its `id` when the dataset has one)
      and what was wrong. For an exception the failing sample is found by re-running the reward on
      one sample at a time (only on this error path).
  on_error="skip" (`--reward-errors skip`): the offending values become `None` (all of them if the
      reward raised or returned the wrong length/type); `n_skipped` counts them over the run and
      `skipped_last` in the latest call, and each call with skips logs a warning.
A `RewardError` raised by the reward itself (a configuration problem, e.g. `retrieval` without
embeddings) always propagates, prefixed with the reward name: skipping it would skip every batch.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from reward_fns.errors import RewardError

__all__ = ["GuardedReward", "Violation", "find_violations", "sample_args"]

logger = logging.getLogger("moon_rl.rewards")
ON_ERROR = ("raise", "skip")


@dataclasses.dataclass
class Violation:
    """One broken contract: `index` is the sample (None: the whole result), `kind` one of
    exception / length / type / non-finite."""

    index: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = "whole batch" if self.index is None else f"sample {self.index}"
        return f"{where}: {self.kind}: {self.detail}"


def find_violations(values: Any, n: int) -> list[Violation]:
    """Contract violations of one reward result for `n` completions (empty list: all good).

    >>> [str(v) for v in find_violations([1.0, None, float("nan")], 3)]
    ['sample 2: non-finite: nan']
    >>> [v.kind for v in find_violations([1.0], 2)]
    ['length']
    """
    if not isinstance(values, list | tuple):
        return [Violation(None, "type", f"returned a {type(values).__name__}; expected a list of {n} floats/None")]
    if len(values) != n:
        return [Violation(None, "length", f"returned {len(values)} values for {n} completions")]
    found = []
    for i, value in enumerate(values):
        if value is None:
            continue
        if not isinstance(value, numbers.Real):  # bools and numpy floats are Real; tensors and strings are not
            found.append(Violation(i, "type", f"{type(value).__name__} {_short(value)}; expected float or None"))
        elif not math.isfinite(float(value)):
            found.append(Violation(i, "non-finite", repr(float(value))))
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _n_completions(args: tuple, kwargs: dict) -> int:
    completions = kwargs["completions"] if "completions" in kwargs else (args[0] if args else None)
    if completions is None:
        raise RewardError("a reward was called without `completions`")
    return len(completions)


def sample_args(args: tuple, kwargs: dict, n: int, i: int) -> tuple[tuple, dict]:
    """The call arguments restricted to sample i: per-sample lists (and (N, ...) tensors) are sliced."""

    def cut(value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == n:
            return type(value)([value[i]])
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] == n:
            return value[i : i + 1]
        return value

    return tuple(cut(a) for a in args), {k: cut(v) for k, v in kwargs.items()}


class GuardedReward:
    """A reward wrapped with contract checks; keeps the wrapped reward's `__name__` (TRL's metric name)."""

    def __new__(cls, fn: Callable | None = None, name: str | None = None, on_error: str = "raise"):
        # TRL awaits rewards whose __call__ is async, so an async reward needs an async wrapper.
        # (fn is None when pickle rebuilds the object; its class is already the right one.)
        if cls is GuardedReward and fn is not None and _is_async(fn):
            cls = AsyncGuardedReward
        return super().__new__(cls)

    def __init__(self, fn: Callable, name: str | None = None, on_error: str = "raise"):
        if on_error not in ON_ERROR:
            raise RewardError(f"reward errors mode {on_error!r} is not one of {list(ON_ERROR)}")
        self.fn = fn
        self.__name__ = name or getattr(fn, "__name__", type(fn).__name__)
        self.on_error = on_error
        self.n_skipped = 0
        self.skipped_last = 0

    def __repr__(self) -> str:
        return f"GuardedReward({self.__name__!r}, on_error={self.on_error!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
        n = _n_completions(args, kwargs)
        try:
            values = self.fn(*args, **kwargs)
        except RewardError as err:
            raise RewardError(f"reward '{self.__name__}': {err}") from err
        except Exception as err:
            return self._on_exception(err, self._isolate(args, kwargs, n), kwargs, n)
        return self._checked(values, kwargs, n)

    # -- shared by the sync and async wrappers

    def _isolate(self, args: tuple, kwargs: dict, n: int) -> int | None:
        """The first sample on which the reward raises by itself, or None (it fails only as a batch)."""
        for i in range(n):
            one_args, one_kwargs = sample_args(args, kwargs, n, i)
            try:
                self.fn(*one_args, **one_kwargs)
            except Exception:
                return i
        return None

    def _describe(self, index: int | None, kwargs: dict) -> str:
        if index is None:
            return "the batch (no single sample reproduces it)"
        ids = kwargs.get("id")
        suffix = f" (id={ids[index]!r})" if isinstance(ids, Sequence) and len(ids) > index else ""
        return f"sample {index}{suffix}"

    def _on_exception(self, err: Exception, index: int | None, kwargs: dict, n: int) -> list[float | None]:
        message = f"reward '{self.__name__}' raised {type(err).__name__}: {err} on {self._describe(index, kwargs)}"
        if self.on_error == "raise":
            raise RewardError(
                f"{message}; fix the reward, or pass --reward-errors skip to score such batches None"
            ) from err
        self._count(n, message)
        return [None] * n

    def _checked(self, values: Any, kwargs: dict, n: int) -> list[float | None]:
        violations = find_violations(values, n)
        if not violations:
            self.skipped_last = 0
            return [None if v is None else float(v) for v in values]
        shown = "; ".join(
            str(v).replace(f"sample {v.index}", self._describe(v.index, kwargs), 1) for v in violations[:5]
        )
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        message = f"reward '{self.__name__}' broke the reward contract on {shown}{more}"
        if self.on_error == "raise":
            raise RewardError(f"{message}; a reward returns one finite float or None per completion")
        if any(v.index is None for v in violations):
            self._count(n, message)
            return [None] * n
        bad = {v.index for v in violations}
        self._count(len(bad), message)
        return [None if (i in bad or v is None) else float(v) for i, v in enumerate(values)]

    def _count(self, k: int, message: str) -> None:
        self.n_skipped += k
        self.skipped_last = k
        logger.warning("%s; %d value(s) set to None (--reward-errors skip)", message, k)


class AsyncGuardedReward(GuardedReward):
    """`GuardedReward` for an async reward (TRL runs those on its event loop)."""

    async def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
        n = _n_completions(args, kwargs)
        try:
            values = await self.fn(*args, **kwargs)
        except RewardError as err:
            raise RewardError(f"reward '{self.__name__}': {err}") from err
        except Exception as err:
            index = None
            for i in range(n):  # find the failing sample, as the sync wrapper does
                one_args, one_kwargs = sample_args(args, kwargs, n, i)
                try:
                    await self.fn(*one_args, **one_kwargs)
                except Exception:
                    index = i
                    break
            return self._on_exception(err, index, kwargs, n)
        return self._checked(values, kwargs, n)


def _is_async(fn: Callable) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
