"""Run one reward on sample completions and report contract violations (`moon-rl rewards check`).

The reward is called once, the way TRL's GRPOTrainer calls it: every dataset column except `prompt` and
`completion` as a keyword (one value per completion), plus `prompts`, `completions`, `completion_ids`,
`trainer_state`, `log_extra`, `log_metric`, and moon-rl's `embeddings` ((N, 32) random unit vectors,
seeded) and `group_id`. Completions are conversational when the dataset's prompts are.

Completions come from `--completions FILE` or are synthesised from each row's ground truth:
gold (`<think>name: value ...</think><answer>{attributes JSON}</answer>`, or the `winner` label for
pairwise data) plus corrupted variants: wrong value, missing answer tag, unbalanced tags, truncated
JSON, nested JSON, duplicate keys, empty answer, empty string, non-UTF-8-looking text and a huge output.

Departures from training: `completion_ids` are the UTF-8 bytes of the text (no tokenizer is loaded), and
`trainer_state` is a stand-in with `global_step=0` (importing transformers would cost seconds).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from pathlib import Path
from typing import Any

from reward_fns.attributes import dumps_answer
from reward_fns.errors import RewardError
from reward_fns.guard import Violation, find_violations, sample_args
from reward_fns.parsing import load_json_field
from reward_fns.registry import resolve_reward

__all__ = ["CheckReport", "check_reward", "failure_line", "format_report", "load_completions_file", "synthesize_completions"]

EMBED_DIM = 32
HUGE_CHARS = 200_000


@dataclasses.dataclass
class CheckReport:
    reward: str
    weight: float
    rows: list[int]  # dataset row of each completion
    kinds: list[str]  # variant name of each completion
    values: list[Any]  # what the reward returned (None when it raised)
    violations: list[Violation]
    spec: str = ""  # as given on the command line (FILE.py:FUNC, a built-in name, ...)

    @property
    def ok(self) -> bool:
        return not self.violations


# ------------------------------------------------------------------------------------------- inputs


def _gold_answer(record: dict) -> tuple[str, dict[str, str]]:
    """(answer body, attributes used in the reasoning) for a row's ground truth."""
    attrs = {str(k): str(v) for k, v in (load_json_field(record.get("attributes")) or {}).items()}
    if record.get("winner") not in (None, ""):
        return str(record["winner"]), attrs
    if record.get("category"):
        attrs_with_category = {**attrs, "category": str(record["category"])}
        return dumps_answer(attrs_with_category), attrs
    return dumps_answer(attrs), attrs


def synthesize_completions(record: dict) -> list[tuple[str, str]]:
    """(kind, completion text) variants for one dataset row: gold first, then corrupted ones."""
    answer, attrs = _gold_answer(record)
    think = "\n".join(f"{k}: {v}" for k, v in attrs.items()) or "the input names the answer"
    wrong = dict(attrs)
    if wrong:
        wrong[next(iter(wrong))] = "zzz-wrong-value"
    wrong_answer = "Z" if record.get("winner") not in (None, "") else dumps_answer(wrong)
    return [
        ("gold", f"<think>\n{think}\n</think>\n<answer>{answer}</answer>"),
        ("wrong_value", f"<think>\n{think}\n</think>\n<answer>{wrong_answer}</answer>"),
        ("missing_answer_tag", f"<think>\n{think}\n</think>\n{answer}"),
        ("unbalanced_tags", f"<think>\n{think}\n<answer>{answer}</think>"),
        ("truncated_json", f"<think>\n{think}\n</think>\n<answer>{answer[: max(1, len(answer) // 2)]}</answer>"),
        ("nested_json", f"<think>{think}</think><answer>{json.dumps({'answer': {'attributes': attrs}})}</answer>"),
        ("duplicate_keys", f'<think>{think}</think><answer>{{"k": "a", "k": "b", "k": {{"k": [1, 2]}}}}</answer>'),
        ("empty_answer", f"<think>{think}</think><answer></answer>"),
        ("empty_string", ""),
        ("non_utf8_looking", "<think>\udcff\x00\ufffd\u202e Ã©Ã¨</think><answer>{\"\udcff\": \"\x00\"}</answer>"),
        ("huge_output", f"<think>{'la ' * (HUGE_CHARS // 3)}</think><answer>{answer}</answer>" + "x" * 1000),
    ]


def load_completions_file(path: str | Path, n_rows: int) -> list[tuple[int, str, Any]]:
    """(row, kind, completion) from a file.

    `*.jsonl`: one `{"row": i, "completion": "..."}` object per line (`completion` may also be a list of
    messages; optional `"kind"` labels the line in the report). Any other file: plain text, every line
    (empty ones too) is one completion, line k going to dataset row k modulo the number of rows.
    """
    path = Path(path)
    if not path.is_file():
        raise RewardError(f"--completions: {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    out: list[tuple[int, str, Any]] = []
    if path.suffix != ".jsonl":
        return [(k % n_rows, "file", line) for k, line in enumerate(text.splitlines())]
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise RewardError(
                f"{path}:{lineno}: invalid JSON ({err.msg}); expected {{\"row\": i, \"completion\": ...}}"
            ) from None
        if not isinstance(obj, dict) or "completion" not in obj:
            raise RewardError(f"{path}:{lineno}: expected an object with 'completion' (and 'row'), got {line[:60]!r}")
        row = obj.get("row", 0)
        if not isinstance(row, int) or not 0 <= row < n_rows:
            raise RewardError(f"{path}:{lineno}: 'row' must be an integer in [0, {n_rows}) (rows checked), got {row!r}")
        out.append((row, str(obj.get("kind", "file")), obj["completion"]))
    if not out:
        raise RewardError(f"{path}: no completions in the file")
    return out


def _load_rows(data_dir: str | Path, max_rows: int) -> list[dict]:
    import datasets

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise RewardError(f"--data: {data_dir} is not a folder; prepare one with `moon-rl data prepare --task grpo`")
    from data_prep.saved import load_saved_dataset

    try:
        ds = load_saved_dataset(data_dir)
    except FileNotFoundError as err:
        raise RewardError(
            f"--data: {data_dir} is not a saved dataset ({err}); use `moon-rl data prepare --task grpo`"
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    if len(ds) == 0:
        raise RewardError(f"--data: {data_dir} has no rows")
    return [ds[i] for i in range(min(max_rows, len(ds)))]


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _reward_inputs(records: list[dict], rows: list[int], texts: list[Any], seed: int) -> dict[str, Any]:
    import torch

    conversational = isinstance(records[0].get("prompt"), list)
    completions = [
        [{"role": "assistant", "content": t}] if conversational and isinstance(t, str) else t for t in texts
    ]
    columns = [k for k in records[0] if k not in ("prompt", "completion", "completion_ids")]
    kwargs: dict[str, Any] = {k: [records[r].get(k) for r in rows] for k in columns}
    if "group_id" not in kwargs:
        kwargs["group_id"] = [str(records[r].get("id", r)) for r in rows]
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.nn.functional.normalize(torch.randn(len(texts), EMBED_DIM, generator=generator), dim=-1)
    ids = [list(str(t if isinstance(t, str) else json.dumps(t)).encode("utf-8", "replace")) for t in texts]
    return dict(
        kwargs,
        prompts=[records[r].get("prompt") for r in rows],
        completions=completions,
        completion_ids=ids,
        trainer_state=types.SimpleNamespace(global_step=0, max_steps=0, epoch=0.0, num_train_epochs=0, log_history=[]),
        log_extra=_noop,
        log_metric=_noop,
        embeddings=embeddings,
    )


# ---------------------------------------------------------------------------------------------- run


def check_reward(
    spec: str, data_dir: str | Path, completions_file: str | Path | None = None, max_rows: int = 8, seed: int = 0
) -> CheckReport:
    """Resolve `spec`, run it on sample completions for the first `max_rows` rows, collect violations."""
    fn, weight = resolve_reward(spec)
    records = _load_rows(data_dir, max_rows)
    if completions_file is not None:
        samples = load_completions_file(completions_file, len(records))
    else:
        samples = [(r, kind, text) for r, rec in enumerate(records) for kind, text in synthesize_completions(rec)]
    rows, kinds, texts = [s[0] for s in samples], [s[1] for s in samples], [s[2] for s in samples]
    inputs = _reward_inputs(records, rows, texts, seed)
    n = len(texts)
    try:
        values = fn(**inputs)
    except Exception as err:
        violations = [Violation(None, "exception", f"{type(err).__name__}: {err}")]
        # Which samples break it on their own (a reward may also fail only as a batch).
        for i in range(n):
            try:
                fn(**sample_args((), inputs, n, i)[1])
            except Exception as one_err:
                violations.append(Violation(i, "exception", f"{type(one_err).__name__}: {one_err}"))
        return CheckReport(getattr(fn, "__name__", spec), weight, rows, kinds, [None] * n, violations, spec)
    violations = find_violations(values, n)
    if any(v.index is None for v in violations):
        values = [None] * n
    return CheckReport(getattr(fn, "__name__", spec), weight, rows, kinds, list(values), violations, spec)


def format_report(report: CheckReport) -> str:
    """A per-variant summary table, then the ok line or every violation (with row and variant); a failed check
    is summed up by `failure_line`."""
    lines = [
        f"reward {report.reward!r} (weight {report.weight:g}) on {len(report.values)} completions "
        f"from {len(set(report.rows))} rows",
        "",
        f"{'variant':<20} {'n':>4} {'mean':>8} {'min':>8} {'max':>8} {'None':>5} {'bad':>4}",
    ]
    bad_at = {v.index for v in report.violations if v.index is not None}
    for kind in dict.fromkeys(report.kinds):
        idx = [i for i, k in enumerate(report.kinds) if k == kind]
        nums = [
            float(report.values[i]) for i in idx
            if isinstance(report.values[i], int | float) and math.isfinite(float(report.values[i]))
        ]
        stats = (sum(nums) / len(nums), min(nums), max(nums)) if nums else (math.nan,) * 3
        n_none = sum(report.values[i] is None for i in idx)
        n_bad = sum(i in bad_at for i in idx)
        lines.append(
            f"{kind:<20} {len(idx):>4} {stats[0]:>8.3f} {stats[1]:>8.3f} {stats[2]:>8.3f} {n_none:>5} {n_bad:>4}"
        )
    lines.append("")
    if not report.violations:
        lines.append(f"ok: no contract violations on {len(report.values)} completions from {len(set(report.rows))} rows")
        return "\n".join(lines)
    lines.append(f"{len(report.violations)} contract violation(s):")
    for v in report.violations[:20]:
        lines.append(f"  {v}{_where(report, v)}")
    if len(report.violations) > 20:
        lines.append(f"  ... and {len(report.violations) - 20} more")
    return "\n".join(lines)


def _where(report: CheckReport, v: Violation) -> str:
    return "" if v.index is None else f" (row {report.rows[v.index]}, variant {report.kinds[v.index]})"


def _first_fault(report: CheckReport) -> str:
    """The reward's own words for what went wrong first: its exception, the wrong length or type, or the first
    offending value with its dataset row."""
    first = report.violations[0]
    if first.kind == "exception":
        alone = next((v for v in report.violations if v.index is not None), None)
        where = f"; alone it fails on row {report.rows[alone.index]} (variant {report.kinds[alone.index]})" if alone else ""
        text = f"it raised {first.detail}{where}" if first.index is None else f"it raised {first.detail}{_where(report, first)}"
    elif first.index is None:  # a wrong length or type of the whole result
        text = f"it {first.detail}" if first.detail.startswith("returned") else f"its result: {first.detail}"
    else:
        text = f"first bad value on row {report.rows[first.index]} (variant {report.kinds[first.index]}): {first.kind} {first.detail}"
    return " ".join(text.split())  # one line, whatever the reward's exception message holds


def failure_line(report: CheckReport) -> str:
    """One line summing up a failed check (the CLI prints it as `error: ...`, last): the reward, how often it broke
    the contract, the first fault in its own words (exception, value and row), and the fix."""
    n = len(report.values)
    bad = len({v.index for v in report.violations if v.index is not None})
    whole = "the call as a whole failed" if any(v.index is None for v in report.violations) else f"on {bad} of {n} completions"
    given = f" ({report.spec})" if report.spec and report.spec != report.reward else ""
    return (
        f"reward {report.reward!r}{given} broke the reward contract {len(report.violations)} time(s) ({whole}, "
        f"{n} completions from {len(set(report.rows))} rows): {_first_fault(report)}; fix the reward so that it "
        "returns one finite float or None per completion (or train with --reward-errors skip to score such samples None)"
    )
