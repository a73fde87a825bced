"""`data_prep.schema`: bad records fail naming where and which field; catalogs round-trip."""

from __future__ import annotations

import json

import pytest

from data_prep.schema import Product, RecordError, load_catalog, validate_record, validate_records, write_catalog


def _good(**changes):
    record = {
        "id": "p1",
        "title": "Navy Cotton Shirt",
        "category": "Clothing > Tops > Shirts",
        "images": ["images/p1.png"],
        "attributes": {"colour": "navy", "material": "cotton"},
        "options": {"colour": ["navy", "red"]},
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": ...}, "title"),
        ({"id": 7}, "id"),
        ({"category": " > "}, "category"),
        ({"images": "p1.png"}, "images"),
        ({"attributes": {"colour": 3}}, "attributes"),
        ({"attributes": {"colour": ""}}, "attributes"),
        ({"queries": "navy shirt"}, "queries"),
        ({"options": {"colour": []}}, "options"),
        ({"attributes": {"colour": "green"}}, "attributes"),  # not among the closed-set options
        ({"description": 5}, "description"),
        ({"reasoning": ["x"]}, "reasoning"),
    ],
)
def test_invalid_record_names_index_and_field(changes, field):
    records = [_good(id="p0"), _good(**changes)]
    with pytest.raises(RecordError) as err:
        validate_records(records, source="shop.jsonl")
    message = str(err.value)
    assert message.startswith("shop.jsonl:2")  # 1-based line of the second record
    assert f"'{field}'" in message


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(RecordError, match=r"record 0 \(id='p1'\): unknown field\(s\) \['price'\].*'title'"):
        validate_record(_good(price="9.99"), 0)


def test_duplicate_ids_fail_naming_both_lines():
    with pytest.raises(RecordError, match=r"shop.jsonl:3 \(id='p1'\): field 'id': duplicate id, first seen at line 1"):
        validate_records([_good(), _good(id="p2"), _good()], source="shop.jsonl")


def test_empty_dataset_fails():
    with pytest.raises(RecordError, match="no records"):
        validate_records([], source="shop.jsonl")


def test_group_id_defaults_to_id():
    assert validate_record(_good(), 0).group_id == "p1"
    assert validate_record(_good(group_id="g9"), 0).group_id == "g9"


def test_catalog_round_trip_and_split(tmp_path):
    products = [validate_record(_good(id=f"p{i}", group_id=f"g{i // 2}"), i) for i in range(4)]
    write_catalog(tmp_path, products, splits={"train": ["p0", "p1"], "test": ["p2", "p3"]}, meta={"name": "t"})
    assert load_catalog(tmp_path) == products
    assert [p.id for p in load_catalog(tmp_path, split="test")] == ["p2", "p3"]
    assert json.loads((tmp_path / "catalog.json").read_text()) == {"name": "t"}
    with pytest.raises(FileNotFoundError, match="no split 'dev'.*'test', 'train'"):
        load_catalog(tmp_path, split="dev")


def test_bad_jsonl_line_is_named(tmp_path):
    good = json.dumps(_good())
    (tmp_path / "products.jsonl").write_text(good + "\n{not json\n")
    with pytest.raises(RecordError, match=r"products.jsonl:2: invalid JSON"):
        load_catalog(tmp_path)
    (tmp_path / "products.jsonl").write_bytes(good.encode() + b"\n\xff\xfe\n")
    with pytest.raises(RecordError, match=r"products.jsonl:2: not valid UTF-8"):
        load_catalog(tmp_path)


def test_split_listing_unknown_ids_fails(tmp_path):
    write_catalog(tmp_path, [Product(id="p1", title="t", category="A > B")], splits={"train": ["p1", "ghost"]})
    with pytest.raises(RecordError, match="ghost"):
        load_catalog(tmp_path, split="train")


def test_missing_catalog_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="moon-rl data synth"):
        load_catalog(tmp_path)
