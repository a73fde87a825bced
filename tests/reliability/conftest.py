"""Fixtures of the reliability tests: the moon_rl trainer tests' tiny data, reused rather than copied.

- `grpo_support` (tests/moon_rl/grpo_support.py: tiny GRPO datasets, fast configs, trainers) is made
  importable here;
- the session fixtures of tests/moon_rl/conftest.py (`sft_catalog_dir`, `sft_dataset_dir`,
  `sft_text_dataset_dir`) are re-exported, so these tests build the same 32-product catalog.
- `cli(args)` runs `moon-rl ARGS` in this process with `sys.argv` set as a shell would set it (the
  interrupt message rebuilds the resume command from it) and returns click's Result.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MOON_TESTS = ROOT / "tests" / "moon_rl"
if str(MOON_TESTS) not in sys.path:
    sys.path.insert(0, str(MOON_TESTS))

_spec = importlib.util.spec_from_file_location("moon_rl_test_fixtures", MOON_TESTS / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
sft_catalog_dir = _fixtures.sft_catalog_dir
sft_dataset_dir = _fixtures.sft_dataset_dir
sft_text_dataset_dir = _fixtures.sft_text_dataset_dir




@pytest.fixture
def cli(monkeypatch):
    from typer.testing import CliRunner

    from moon_rl.cli import app

    def run(args: list[str]):
        args = [str(a) for a in args]
        monkeypatch.setattr(sys, "argv", ["moon-rl", *args])
        return CliRunner().invoke(app, args)

    return run
