"""Every registered command and sub-command answers --help (walks the real click tree, so a new command
is covered without touching this file), `moon-rl --help` does not import torch, and the lower packages'
own errors (DataPrepError, RewardError) reach the user as one `error:` line with exit status 2."""

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from data_prep.errors import DataPrepError
from moon_rl.cli import app
from moon_rl.errors import USER_ERRORS, MoonError
from reward_fns.errors import RewardError


def _command_paths(group, prefix=()):
    for name, cmd in getattr(group, "commands", {}).items():
        yield (*prefix, name)
        yield from _command_paths(cmd, (*prefix, name))


def test_every_command_has_help():
    paths = list(_command_paths(typer.main.get_command(app)))
    assert {("sft",), ("grpo",), ("eval",), ("export-adapter",), ("demo",), ("data", "synth"), ("rewards", "check")} <= set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output and len(result.output.splitlines()) > 3, path


def test_top_level_help_is_light():
    code = "import sys; from moon_rl.cli import app; sys.argv=['moon-rl','--help']\ntry:\n app()\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["data", "prepare", "--source", "nope", "--input", "{tmp}/shop.jsonl", "--out", "{tmp}/out"], DataPrepError, "unknown source 'nope'"),
        (["rewards", "check", "nope", "--data", "{tmp}"], RewardError, "unknown reward 'nope'"),
        # reward_fns.check -> data_prep.saved.load_saved_dataset: a broken saved dataset
        (["rewards", "check", "format", "--data", "{tmp}/broken"], DataPrepError, "the saved dataset is unreadable"),
    ],
)
def test_lower_package_errors_are_one_line_exit_2(argv, error, message, tmp_path, monkeypatch):
    """data_prep and reward_fns do not import moon_rl, so their errors are no MoonErrors; the CLI catches them
    all the same (`USER_ERRORS`). `fail` is spied on to check which exception the command really raised."""
    from moon_rl.cli import common

    (tmp_path / "shop.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "broken").mkdir()
    for name in ("state.json", "dataset_info.json"):
        (tmp_path / "broken" / name).write_text("not json", encoding="utf-8")
    caught, real_fail = [], common.fail
    monkeypatch.setattr(common, "fail", lambda msg, code=2: (caught.append(sys.exc_info()[0]), real_fail(msg, code)))
    result = CliRunner().invoke(app, [arg.format(tmp=tmp_path) for arg in argv])
    assert caught == [error] and not issubclass(error, MoonError) and issubclass(error, ValueError)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert set(USER_ERRORS) == {MoonError, DataPrepError, RewardError}
