"""Every registered command and sub-command answers --help (walks the real click tree, so a new command
is covered without touching this file), and `moon-rl --help` does not import torch."""

import subprocess
import sys

import typer
from typer.testing import CliRunner

from moon_rl.cli import app


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
