"""`data_prep.tasks` / `data_prep.formats`: catalog -> SFT/GRPO datasets in the column contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from datasets import load_from_disk
from PIL import Image

from data_prep.errors import DataPrepError
from data_prep.formats import build_trace, find_mention, parse_trace
from data_prep.schema import Product, load_catalog, read_split_ids, write_catalog
from data_prep.synth import SynthConfig, synth_catalog
from data_prep.tasks import prepare_task

CONTRACT = ["prompt", "completion", "images", "id", "group_id", "title", "category", "attributes", "options"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tasks") / "cat"
    synth_catalog(out, SynthConfig(products=40, seed=3), progress=False)
    return out


@pytest.fixture(scope="module")
def sft(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "ds"
    prepare_task("sft", catalog, out, progress=False)
    return load_from_disk(str(out))


def _by_id(catalog, split="train"):
    return {p.id: p for p in load_catalog(catalog, split=split)}


def test_sft_dataset_has_the_contract_columns(sft, catalog):
    assert sft.column_names == CONTRACT
    products = _by_id(catalog)
    product_rows = [r for r in sft if "#q" not in r["id"]]
    assert sorted(r["id"] for r in product_rows) == sorted(products)
    for row in product_rows:
        p = products[row["id"]]
        (turn,) = row["prompt"]
        assert turn["role"] == "user"
        n_placeholders = sum(part["type"] == "image" for part in turn["content"])
        assert n_placeholders == len(row["images"]) == len(p.images) == 1
        assert isinstance(row["images"][0], Image.Image)
        text = turn["content"][-1]["text"]
        assert p.title in text and p.category in text
        assert row["completion"][0]["role"] == "assistant"
        assert (row["group_id"], row["title"], row["category"]) == (p.group_id, p.title, p.category)
        assert json.loads(row["options"]) == p.options
        assert json.loads(row["attributes"]) == p.attributes


def test_trace_parses_and_answer_equals_attributes(sft):
    for row in sft:
        parsed = parse_trace(row["completion"][0]["content"])
        assert parsed is not None, row["completion"][0]["content"]
        think, answer = parsed
        assert answer == json.loads(row["attributes"])
        for name, value in answer.items():
            assert f"-> {name}: {value}" in think


def test_template_trace_says_where_each_value_comes_from():
    p = Product(
        id="x",
        title="Halden Navy Shirt",
        category="Clothing > Tops > Shirts",
        description="Material: linen.",
        images=["images/x.png"],
        attributes={"colour": "navy", "pattern": "striped", "material": "linen", "fit": "slim fit"},
    )
    think, answer = parse_trace(build_trace(p))
    assert answer == p.attributes
    assert "the title says 'Navy' -> colour: navy" in think
    assert "the image shows stripes -> pattern: striped" in think
    assert "the description says 'linen' -> material: linen" in think
    assert "does not state it" in think and "-> fit: slim fit" in think
    # Without images the trace must not claim to see anything.
    assert "image" not in parse_trace(build_trace(p, has_images=False))[0]


def test_query_rows_share_group_and_answer_what_the_query_states(sft, catalog):
    products = _by_id(catalog)
    query_rows = [r for r in sft if "#q" in r["id"]]
    assert len(query_rows) == sum(len(p.queries) for p in products.values())
    for row in query_rows:
        p = products[row["id"].split("#q")[0]]
        assert row["group_id"] == p.group_id and row["title"] in p.queries
        assert row["images"] == []
        assert [part["type"] for part in row["prompt"][0]["content"]] == ["text"]
        stated = json.loads(row["attributes"])
        assert stated and stated.items() <= p.attributes.items()
        assert all(find_mention(row["title"], v) for v in stated.values())
        assert "image" not in parse_trace(row["completion"][0]["content"])[0]


def test_grpo_has_ground_truth_but_no_completion(catalog, tmp_path):
    ds = prepare_task("grpo", catalog, tmp_path / "grpo", split="test", query_rows=False, progress=False)
    loaded = load_from_disk(str(tmp_path / "grpo"))
    assert loaded.column_names == [c for c in CONTRACT if c != "completion"]
    assert loaded["id"] == read_split_ids(catalog, "test") == ds["id"]


def test_text_only_dataset_has_string_prompts_and_no_images(catalog, tmp_path):
    ds = prepare_task("sft", catalog, tmp_path / "txt", with_images=False, progress=False)
    assert "images" not in ds.column_names
    assert all(isinstance(row["prompt"][0]["content"], str) for row in ds)


def _tiny_catalog(root: Path, **fields) -> Path:
    record = dict(id="a1", title="Halden Navy Shirt", category="Clothing > Tops > Shirts", attributes={"colour": "navy"})
    record.update(fields)
    write_catalog(root, [Product(**record)], splits={"train": [record["id"]]})
    return root


def test_teacher_reasoning_wins_over_the_template(tmp_path):
    cat = _tiny_catalog(tmp_path / "free", reasoning="The title calls it navy, so colour is navy.")
    ds = prepare_task("sft", cat, None, query_rows=False, progress=False)
    think, answer = parse_trace(ds[0]["completion"][0]["content"])
    assert think == "The title calls it navy, so colour is navy." and answer == {"colour": "navy"}

    full = '<think>teacher says navy</think><answer>{"colour": "navy"}</answer>'
    cat = _tiny_catalog(tmp_path / "full", reasoning=full)
    assert prepare_task("sft", cat, None, progress=False)[0]["completion"][0]["content"] == full

    cat = _tiny_catalog(tmp_path / "bad", reasoning="<think>x</think><answer>not json</answer>")
    with pytest.raises(DataPrepError, match=r"id='a1'.*'reasoning'"):
        prepare_task("sft", cat, None, progress=False)


def test_missing_image_fails_naming_the_record_before_writing(catalog, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(catalog, broken)
    victim = load_catalog(broken, split="train")[5]
    (broken / victim.images[0]).unlink()
    with pytest.raises(DataPrepError, match=rf"id='{victim.id}'.*{victim.images[0]}"):
        prepare_task("sft", broken, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    # A text-only dataset does not need the file.
    assert len(prepare_task("sft", broken, None, with_images=False, query_rows=False, progress=False)) > 0


def test_record_without_attributes_fails_for_sft_only(tmp_path):
    cat = _tiny_catalog(tmp_path / "noattr", attributes={})
    with pytest.raises(DataPrepError, match=r"id='a1'.*'attributes'"):
        prepare_task("sft", cat, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert json.loads(prepare_task("grpo", cat, None, progress=False)[0]["attributes"]) == {}


def test_on_error_skip_drops_what_the_task_cannot_use_and_names_it(tmp_path):
    products = [
        Product(id="a1", title="Halden Navy Shirt", category="Clothing > Tops > Shirts", attributes={"colour": "navy"}),
        Product(id="a2", title="Plain Shirt", category="Clothing > Tops > Shirts"),
        Product(id="a3", title="Missing Image Shirt", category="Clothing > Tops > Shirts", attributes={"colour": "red"},
                images=["images/none.png"]),
    ]
    write_catalog(tmp_path / "cat", products, splits={"train": ["a1", "a2", "a3"]})
    with pytest.raises(DataPrepError, match=r"id='a2'.*'attributes' is empty.*--on-error skip"):
        prepare_task("sft", tmp_path / "cat", None, with_images=False, progress=False)
    report: dict = {}
    ds = prepare_task("sft", tmp_path / "cat", None, with_images=False, progress=False, on_error="skip", report=report)
    assert ds["id"] == ["a1", "a3"] and report["skipped"] == 1 and report["skipped_ids"] == ["a2"]
    assert "'attributes' is empty" in report["skip_reasons"][0]
    # With images, a3's missing file is one more record the task cannot use.
    ds = prepare_task("sft", tmp_path / "cat", None, progress=False, on_error="skip", report=report)
    assert ds["id"] == ["a1"] and report["skipped"] == 2 and report["skipped_ids"] == ["a2", "a3"]
    assert "none.png" in report["skip_reasons"][1]


def test_schema_errors_surface_as_moon_errors(tmp_path):
    cat = _tiny_catalog(tmp_path / "cat")
    lines = (cat / "products.jsonl").read_text().replace('"Halden Navy Shirt"', '""')
    (cat / "products.jsonl").write_text(lines)
    with pytest.raises(DataPrepError, match=r"products.jsonl:1 \(id='a1'\): field 'title'"):
        prepare_task("sft", cat, None, progress=False)
    with pytest.raises(DataPrepError, match="unknown task"):
        prepare_task("dpo", cat, None, progress=False)
    with pytest.raises(DataPrepError, match="no split 'dev'"):
        prepare_task("grpo", _tiny_catalog(tmp_path / "ok"), None, split="dev", progress=False)
