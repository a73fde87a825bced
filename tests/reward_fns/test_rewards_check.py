"""`moon-rl rewards list|check` and reward_fns.check on a tiny prepared GRPO dataset."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moon_rl.cli import app
from reward_fns.check import check_reward, load_completions_file, synthesize_completions
from reward_fns.registry import BUILTINS

CUSTOM = Path(__file__).parent / "custom_rewards.py"


def _row(i, group, attrs, options=None, **extra):
    return {
        "prompt": [{"role": "user", "content": f"Identify the attributes of product {i}."}],
        "id": f"p{i}",
        "group_id": group,
        "title": f"Navy long sleeve shirt {i}",
        "category": "Clothing > Tops > Shirts",
        "attributes": json.dumps(attrs),
        "options": json.dumps(options or {}),
        **extra,
    }


@pytest.fixture(scope="module")
def grpo_dir(tmp_path_factory):
    import datasets

    rows = [
        _row(0, "g0", {"colour": "navy", "sleeve": "long"}, {"sleeve": ["long", "short"]}),
        _row(1, "g0", {"colour": "Navy", "sleeve": "long"}),
        _row(2, "g1", {"colour": "white", "length": "70 cm"}),
    ]
    path = tmp_path_factory.mktemp("grpo") / "data"
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def pairwise_dir(tmp_path_factory):
    import datasets

    rows = [
        {"prompt": "Which creative is better, A or B?", "id": f"q{i}", "group_id": f"q{i}", "winner": w}
        for i, w in enumerate("ABA")
    ]
    path = tmp_path_factory.mktemp("pairwise") / "data"
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


runner = CliRunner()


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_passes_check(grpo_dir, name):
    report = check_reward(name, grpo_dir)
    assert report.ok, report.violations
    assert len(report.values) == 3 * len(synthesize_completions({"attributes": "{}"}))


def test_gold_beats_corruptions(grpo_dir):
    report = check_reward("attribute_f1", grpo_dir)
    by_kind = {}
    for kind, value in zip(report.kinds, report.values):
        by_kind.setdefault(kind, []).append(value)
    assert by_kind["gold"] == [1.0, 1.0, 1.0]
    assert all(v < 1.0 for v in by_kind["wrong_value"])
    assert by_kind["truncated_json"] == [0.0] * 3 and by_kind["empty_string"] == [0.0] * 3
    assert check_reward("category", grpo_dir).values[0] == 1.0  # gold answers carry the category


def test_pairwise_check(pairwise_dir):
    report = check_reward("pairwise_choice", pairwise_dir)
    assert report.ok
    gold = [v for k, v in zip(report.kinds, report.values) if k == "gold"]
    wrong = [v for k, v in zip(report.kinds, report.values) if k == "wrong_value"]
    assert gold == [1.0] * 3 and wrong == [0.0] * 3


def test_broken_rewards_are_reported(grpo_dir):
    report = check_reward(f"{CUSTOM}:broken_raises_on_empty", grpo_dir)
    assert not report.ok
    kinds = {report.kinds[v.index] for v in report.violations if v.index is not None}
    assert kinds == {"empty_string"}  # the samples that raise on their own are named
    assert not check_reward(f"{CUSTOM}:broken_nan", grpo_dir).ok
    assert check_reward(f"{CUSTOM}:broken_short", grpo_dir).violations[0].kind == "length"


def test_completions_files(tmp_path, grpo_dir):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        json.dumps({"row": 2, "completion": '<think>t</think><answer>{"colour": "white"}</answer>', "kind": "mine"})
        + "\n" + json.dumps({"row": 0, "completion": [{"role": "assistant", "content": "x"}]}) + "\n"
    )
    report = check_reward("attribute_f1", grpo_dir, completions_file=jsonl)
    assert report.rows == [2, 0] and report.kinds == ["mine", "file"]
    assert report.values == [pytest.approx(2 / 3), 0.0]
    txt = tmp_path / "c.txt"
    txt.write_text("a\n\nb\nc\n")
    assert [r for r, _, _ in load_completions_file(txt, 3)] == [0, 1, 2, 0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"row": 7, "completion": "x"}\n')
    with pytest.raises(Exception, match=r"bad.jsonl:1: 'row'"):
        load_completions_file(bad, 3)


def test_cli_list():
    result = runner.invoke(app, ["rewards", "list"])
    assert result.exit_code == 0
    for name in BUILTINS:
        assert name in result.output


def test_cli_check_exit_codes(grpo_dir, tmp_path):
    ok = runner.invoke(app, ["rewards", "check", "attribute_f1(normalize=true)=2", "--data", str(grpo_dir)])
    assert ok.exit_code == 0, ok.output
    assert "gold" in ok.output and "ok: no contract violations" in ok.output
    bad = runner.invoke(app, ["rewards", "check", f"{CUSTOM}:broken_types", "--data", str(grpo_dir), "--rows", "1"])
    assert bad.exit_code == 1 and "contract violation" in bad.output
    unknown = runner.invoke(app, ["rewards", "check", "nope", "--data", str(grpo_dir)])
    assert unknown.exit_code == 2 and "unknown reward 'nope'" in unknown.output
    missing = runner.invoke(app, ["rewards", "check", "format", "--data", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "not a folder" in missing.output


@pytest.mark.parametrize("args", [["rewards", "--help"], ["rewards", "list", "--help"], ["rewards", "check", "--help"]])
def test_cli_help(args):
    assert runner.invoke(app, args).exit_code == 0
