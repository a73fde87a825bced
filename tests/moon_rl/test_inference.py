"""`moon_rl.load` and `MoonModel.encode / generate` on tiny local models."""

from __future__ import annotations

import json
import shutil

import subprocess
import sys

import pytest
import torch

from data_prep.schema import load_catalog
from moon_rl import inference as moon_rl  # `moon_rl.load` below; the package attribute is tested in a subprocess
from moon_rl.errors import MoonError
from moon_rl.inference import MoonModel, Query, as_record, record_prompt, resolve_model_dir
from moon_rl.eval.random_run import write_random_run


@pytest.fixture(scope="module")
def vl_base(tiny_model_dir):
    return tiny_model_dir("qwen2_5_vl")


@pytest.fixture(scope="module")
def vl_run(vl_base, tmp_path_factory):
    # Fusion pooling + residual enhancement: every add-on sits on the encoding path.
    return write_random_run(vl_base, tmp_path_factory.mktemp("inference") / "run", pooling="fusion", residual=True)


@pytest.fixture(scope="module")
def products(sft_catalog_dir):
    return load_catalog(sft_catalog_dir, split="test")[:4]


def test_import_is_light_and_load_is_exported_lazily():
    # A subprocess: under pytest, `tests/moon_rl` can shadow the package name `moon_rl`.
    code = "import sys, moon_rl; assert 'torch' not in sys.modules; assert callable(moon_rl.load); assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_base_model_is_the_mean_pooling_baseline(vl_base, products, sft_catalog_dir):
    model = moon_rl.load(vl_base)
    assert isinstance(model, MoonModel) and model.extras is None and "zero-shot" in model.kind
    emb = model.encode(products, catalog_dir=sft_catalog_dir, reasoning=False, progress=False)
    assert emb.shape == (4, 64)  # hidden size of the tiny model: no head
    assert torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1])


def test_run_encodes_through_adapter_head_and_residual(vl_run, products, sft_catalog_dir):
    model = moon_rl.load(vl_run)
    assert model.kind == "moon-rl adapter + head" and model.embedding_dim == 32
    assert model.extras.residual is not None and model.extras.residual.gate_norms()[0] > 0
    kwargs = dict(catalog_dir=sft_catalog_dir, max_new_tokens=6, progress=False)
    emb, texts = model.encode_with_completions(products, batch_size=4, **kwargs)
    assert emb.shape == (4, 32) and torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    # Padding/batching does not change a record's embedding (right-padded forward, as in training).
    one_by_one = model.encode(products, batch_size=1, **kwargs)
    assert (emb - one_by_one).abs().max() < 1e-5
    # The texts are the greedy generations, the same as generate() gives.
    assert texts == model.generate(products, **kwargs)
    # Without reasoning the pooled span is the prompt text: a different embedding.
    assert not torch.allclose(emb, model.encode(products, reasoning=False, **kwargs), atol=1e-4)
    # The adapter is really applied: switching it off changes the embeddings.
    with model.model.disable_adapter():
        assert not torch.allclose(emb, model.encode(products, **kwargs), atol=1e-4)


def test_batches_run_longest_first_and_come_back_in_the_callers_order(vl_run, products, sft_catalog_dir):
    from moon_rl.inference import longest_first

    model = moon_rl.load(vl_run)
    kwargs = dict(catalog_dir=sft_catalog_dir, max_new_tokens=4, progress=False)
    records = [products[2], products[0], Query(text="a query longer than any product record of the tiny catalog, on purpose " * 20), products[1]]
    assert longest_first(records)[0] == 2 and sorted(longest_first(records)) == [0, 1, 2, 3]
    emb, texts = model.encode_with_completions(records, batch_size=4, **kwargs)
    alone = [model.encode_with_completions([r], batch_size=1, **kwargs) for r in records]  # one call each: no reordering
    assert (emb - torch.cat([e for e, _ in alone])).abs().max() < 1e-5
    assert texts == [t[0] for _, t in alone] == model.generate(records, batch_size=4, **kwargs)


def test_queries_image_only_and_dict_records(vl_run, products, sft_catalog_dir):
    from PIL import Image

    model = moon_rl.load(vl_run)
    p = products[0]
    image_only = {"id": "x", "title": "", "category": p.category, "images": p.images}
    records = [Query(text="red striped shirt"), Query(images=[Image.new("RGB", (40, 40), "red")]), "blue mug", image_only, {"title": "plain text"}]
    emb = model.encode(records, catalog_dir=sft_catalog_dir, max_new_tokens=3, progress=False)
    assert emb.shape == (5, 32) and torch.isfinite(emb).all()
    messages, images = record_prompt(as_record(image_only), sft_catalog_dir, with_images=True)
    text = messages[0]["content"][-1]["text"]
    assert len(images) == 1 and "Title:" not in text and "Category:" in text
    messages, _ = record_prompt(Query(text="navy shirt"), sft_catalog_dir, with_images=False)
    assert "Query: navy shirt" in messages[0]["content"] and "Category" not in messages[0]["content"]


def test_text_model_ignores_images(tiny_model_dir, products, sft_catalog_dir):
    model = moon_rl.load(tiny_model_dir("qwen2"))
    assert not model.is_vision_language
    emb = model.encode(products[:2], catalog_dir=sft_catalog_dir, max_new_tokens=3, progress=False)
    assert emb.shape == (2, 64)


def test_run_folder_falls_back_to_newest_complete_checkpoint(tmp_path, vl_run):
    from moon_rl.trainers.checkpoints import mark_complete

    run = tmp_path / "run"
    for step, complete in ((5, True), (10, True), (15, False)):
        shutil.copytree(vl_run, run / f"checkpoint-{step}")
        if complete:
            mark_complete(run / f"checkpoint-{step}", step)
    assert resolve_model_dir(run) == run / "checkpoint-10"
    empty = tmp_path / "empty"
    (empty / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(MoonError, match="only incomplete checkpoints"):
        resolve_model_dir(empty)
    with pytest.raises(MoonError, match="does not exist"):
        moon_rl.load(tmp_path / "nope")


def test_wrong_base_model_fails_clearly(vl_run, tiny_model_dir, tmp_path):
    # A text model has none of the VL adapter's modules (PEFT alone would only warn).
    with pytest.raises(MoonError, match="wrong base model"):
        moon_rl.load(vl_run, base_model=str(tiny_model_dir("qwen2")))
    moved = tmp_path / "run"
    shutil.copytree(vl_run, moved)
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(MoonError, match="--base-model"):
        moon_rl.load(moved)
