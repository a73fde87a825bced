"""Fixtures for the moon_rl trainer tests: one small synthetic catalog per session, prepared for SFT.

- `sft_catalog_dir`: 32 synthetic products (32 px images), about 25 in the train split.
- `sft_dataset_dir`: that catalog's train split as a vision-language SFT dataset (with query rows).
- `sft_text_dataset_dir`: the same rows without images, for text-only models.
Tests must not write into these folders (they are shared); copy them first if needed.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sft_catalog_dir(tmp_path_factory):
    from data_prep.synth import SynthConfig, synth_catalog

    out = tmp_path_factory.mktemp("sft-catalog") / "catalog"
    synth_catalog(out, SynthConfig(products=32, seed=0, image_size=32), progress=False)
    return out


@pytest.fixture(scope="session")
def sft_dataset_dir(sft_catalog_dir, tmp_path_factory):
    from data_prep.tasks import prepare_task

    out = tmp_path_factory.mktemp("sft-data") / "sft"
    prepare_task("sft", sft_catalog_dir, out, split="train", with_images=True, progress=False)
    return out


@pytest.fixture(scope="session")
def sft_text_dataset_dir(sft_catalog_dir, tmp_path_factory):
    from data_prep.tasks import prepare_task

    out = tmp_path_factory.mktemp("sft-text-data") / "sft"
    prepare_task("sft", sft_catalog_dir, out, split="train", with_images=False, progress=False)
    return out
