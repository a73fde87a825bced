"""The category schema of attribute catalogs (AE-110K / OA-Mine): which attribute names a prompt asks for, and the
compact trace. Training rows and eval's prompts must ask the same question; the schema comes from the train split."""

import json
from pathlib import Path

import pytest

from data_prep.errors import DataPrepError
from data_prep.formats import attribute_names, build_trace, category_schema, parse_trace, prompt_text
from data_prep.schema import Product, load_catalog
from data_prep.sources import convert_source
from data_prep.tasks import prepare_task
from moon_rl.records import record_prompt


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def catalog(tmp_path) -> Path:
    write_jsonl(tmp_path / "ds" / "train.jsonl", [
        {"input": "ACME Lure 85mm 20g", "category": "Lure",
         "target_scores": {"Brand Name": {"ACME": 1}, "Weight": {"n/a": 1}, "Length": {"85mm": 1}}},
        {"input": "Bolt Lure red", "category": "Lure", "target_scores": {"Color": {"red": 1}, "Brand Name": {"Bolt": 1}}},
    ])
    write_jsonl(tmp_path / "ds" / "test.jsonl", [
        # "Secret" is labelled only in test: it must not reach the prompt (test labels do not shape the question).
        {"input": "Zed Lure 9g", "category": "Lure", "target_scores": {"Brand Name": {"Zed": 1}, "Secret": {"x": 1}}},
        {"input": "Cap", "category": "Caps", "target_scores": {"Material": {"Cotton": 1}}},
    ])
    convert_source("ae110k", tmp_path / "ds", tmp_path / "cat")
    return tmp_path / "cat"


def test_schema_is_the_train_splits_names_per_category_na_included(catalog):
    schema = category_schema(catalog)
    assert schema == {"Lure": ["Brand Name", "Weight", "Length", "Color"]}
    products = {p.id: p for p in load_catalog(catalog)}
    assert attribute_names(products["test-1"], schema) == ["Brand Name", "Weight", "Length", "Color"]
    # A category the train split never labels falls back to the product's own attribute names.
    assert attribute_names(products["test-2"], schema) == ["Material"]
    assert category_schema(catalog.parent / "nowhere") == {}


def test_eval_prompt_is_the_training_prompt(catalog):
    products = {p.id: p for p in load_catalog(catalog, split="test")}
    rows = {r["id"]: r for r in prepare_task("grpo", catalog, split="test", progress=False)}
    for pid, product in products.items():
        messages, _ = record_prompt(product, catalog, with_images=False)
        assert messages[0]["content"] == rows[pid]["prompt"][0]["content"]
    assert "Attributes: Brand Name, Weight, Length, Color" in rows["test-1"]["prompt"][0]["content"]
    assert "Secret" not in rows["test-1"]["prompt"][0]["content"]


def test_compact_trace_names_what_the_title_states_and_answers_the_labels(catalog):
    rows = prepare_task("sft", catalog, split="train", progress=False, trace="compact")
    trace = rows[0]["completion"][0]["content"]
    think, answer = parse_trace(trace)
    assert think == "Stated in the title: Brand Name, Length."
    assert answer == {"Brand Name": "ACME", "Length": "85mm"}
    template = prepare_task("sft", catalog, split="train", progress=False)[0]["completion"][0]["content"]
    assert parse_trace(template)[1] == answer and len(template) > len(trace)


def test_compact_trace_says_implied_values_and_empty_titles():
    product = Product(id="1", title="Lure", category="Lure", attributes={"Brand": "Acme"})
    assert "Implied: Brand." in build_trace(product, style="compact")
    bare = Product(id="2", title="Lure", category="Lure")
    assert build_trace(bare, style="compact").startswith("<think>\nThe title states none of them.")


def test_unknown_trace_style_is_refused(catalog):
    with pytest.raises(DataPrepError, match="--trace 'short'"):
        prepare_task("sft", catalog, progress=False, trace="short")
    with pytest.raises(DataPrepError, match="trace style 'x'"):
        build_trace(Product(id="1", title="t", category="c", attributes={"a": "b"}), style="x")


def test_prompt_text_names_override_and_default():
    product = Product(id="1", title="t", category="c", attributes={"a": "1", "b": "2"})
    assert prompt_text(product).endswith("Attributes: a, b")
    assert prompt_text(product, names=["z", "a"]).endswith("Attributes: z, a")
    assert "Attributes" not in prompt_text(product, names=[])


def test_eval_scores_all_negative_titles_of_a_schema_category(catalog, tmp_path):
    """A Lure title whose every attribute is "n/a" is still asked the Lure attributes: filling one is a false positive."""
    from moon_rl.eval.metrics import attribute_metrics
    from moon_rl.eval.tasks import attribute_records, load_eval_data

    write_jsonl(tmp_path / "ds2" / "train.jsonl", [
        {"input": "ACME Lure 85mm", "category": "Lure", "target_scores": {"Brand Name": {"ACME": 1}, "Weight": {"n/a": 1}}},
    ])
    write_jsonl(tmp_path / "ds2" / "test.jsonl", [
        {"input": "Zed Lure", "category": "Lure", "target_scores": {"Brand Name": {"Zed": 1}}},
        {"input": "Some lure", "category": "Lure", "target_scores": {"Brand Name": {"n/a": 1}, "Weight": {"n/a": 1}}},
        {"input": "Hat", "category": "Caps", "target_scores": {"Material": {"n/a": 1}}},  # no schema, no label: not asked
    ])
    convert_source("ae110k", tmp_path / "ds2", tmp_path / "cat2")
    data = load_eval_data(tmp_path / "cat2", max_products=0, max_queries=0)
    records = attribute_records(data, 0)
    assert sorted(p.id for _, p in records) == ["test-1", "test-2"]
    golds = [p.attributes for _, p in sorted(records, key=lambda r: r[1].id)]
    out = attribute_metrics(['<answer>{"Brand Name": "Zed"}</answer>', '<answer>{"Brand Name": "Some"}</answer>'], golds)
    assert out["precision"] == 0.5 and out["recall"] == 1.0 and out["n_records"] == 2
