"""Fixtures of the reliability tests: the moon_rl trainer tests' tiny data, reused rather than copied.

- `grpo_support` (tests/moon_rl/grpo_support.py: tiny GRPO datasets, fast configs, trainers) is made
  importable here;
- the session fixtures of tests/moon_rl/conftest.py (`sft_catalog_dir`, `sft_dataset_dir`,
  `sft_text_dataset_dir`) are re-exported, so these tests build the same 32-product catalog.
- `cli(args)` runs `moon-rl ARGS` in this process with `sys.argv` set as a shell would set it (the
  interrupt message rebuilds the resume command from it) and returns click's Result.
- `base_catalog` / `catalog`: an 8-product synthetic catalog built once per module, and a private copy of it per
  test (the hostile-input tests edit it); test_hostile_probes.py keeps its own 12-product layout.
"""

from __future__ import annotations

import importlib.util
import shutil
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


@pytest.fixture(scope="module")
def base_catalog(tmp_path_factory):
    from data_prep.synth import SynthConfig, synth_catalog

    out = tmp_path_factory.mktemp("hostile-catalog") / "catalog"
    synth_catalog(out, SynthConfig(products=8, seed=0, image_size=16), progress=False)
    return out


@pytest.fixture
def catalog(base_catalog, tmp_path):
    """A private copy; `victim(catalog)` is its first train record."""
    copy = tmp_path / "catalog"
    shutil.copytree(base_catalog, copy)
    return copy




@pytest.fixture
def cli(monkeypatch):
    from typer.testing import CliRunner

    from moon_rl.cli import app

    def run(args: list[str]):
        args = [str(a) for a in args]
        monkeypatch.setattr(sys, "argv", ["moon-rl", *args])
        return CliRunner().invoke(app, args)

    return run
