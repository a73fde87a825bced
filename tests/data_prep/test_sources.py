"""data_prep.sources and its loaders: each source turns its format into a valid, self-contained catalog."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from data_prep.errors import DataPrepError
from data_prep.schema import load_catalog, read_split_ids
from data_prep.sources import SOURCES, convert_source, format_report, parse_mapping

REAL = Path("/work/shared/data/real")


def png(path: Path, colour=(255, 0, 0), size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter=",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- arguments


def test_unknown_source_lists_the_available_ones(tmp_path):
    with pytest.raises(DataPrepError, match="unknown source 'amazon'") as err:
        convert_source("amazon", tmp_path, tmp_path / "out")
    for name in SOURCES:
        assert name in str(err.value)


def test_bad_on_error_and_mapping(tmp_path):
    with pytest.raises(DataPrepError, match="--on-error 'ignore'"):
        convert_source("catalog", tmp_path, tmp_path / "out", on_error="ignore")
    with pytest.raises(DataPrepError, match="FIELD=COLUMN"):
        parse_mapping(["title"])
    assert parse_mapping(["title=product_name", "attributes.colour = color"]) == {
        "title": "product_name",
        "attributes.colour": "color",
    }
    table = write_jsonl(tmp_path / "cat" / "p.jsonl", [{"id": "1", "title": "t", "category": "c"}])
    with pytest.raises(DataPrepError, match=r"--map \['titel'\].*mappable fields are"):
        convert_source("catalog", table, tmp_path / "out", mapping={"titel": "name"})
    with pytest.raises(DataPrepError, match="takes no --map"):
        convert_source("ae110k", table, tmp_path / "out", mapping={"title": "x"})


def test_out_must_not_be_the_input_folder(tmp_path):
    table = write_jsonl(tmp_path / "products.jsonl", [{"id": "1", "title": "t", "category": "c"}])
    with pytest.raises(DataPrepError, match="is the input folder"):
        convert_source("catalog", table, tmp_path)


# ---------------------------------------------------------------- catalog


def make_shop(root: Path) -> Path:
    png(root / "pics" / "a.png", (255, 0, 0))
    png(root / "pics" / "b.png", (0, 255, 0))
    return write_csv(
        root / "shop.csv",
        ["sku", "product_name", "cat", "img_path", "color", "fold", "desc"],
        [
            ["s1", "Red linen shirt", "Clothing > Tops", "pics/a.png|pics/b.png", "red", "train", "soft"],
            ["s2", "Green mug", "Home > Kitchen", '["pics/b.png"]', "green", "test", ""],
            ["s3", "Plain mug", "Home > Kitchen", "", "", "train", ""],
        ],
    )


def test_catalog_csv_with_mapping_copies_images_and_writes_splits(tmp_path):
    table = make_shop(tmp_path / "shop")
    mapping = parse_mapping(
        ["id=sku", "title=product_name", "category=cat", "images=img_path", "attributes.colour=color",
         "split=fold", "description=desc"]
    )
    report = convert_source("catalog", table, tmp_path / "out", mapping=mapping)
    assert report["records"] == 3 and report["images"] == 2 and report["skipped"] == 0
    assert report["splits"] == {"train": 2, "test": 1}
    assert "wrote 3 records" in format_report(report)

    shutil.rmtree(tmp_path / "shop")  # the output must not need the input any more
    products = {p.id: p for p in load_catalog(tmp_path / "out")}
    assert products["s1"].attributes == {"colour": "red"} and products["s1"].description == "soft"
    assert products["s3"].attributes == {} and products["s3"].images == []
    assert len(products["s1"].images) == 2 and products["s2"].images == products["s1"].images[1:]
    for rel in products["s1"].images:
        assert rel.startswith("images/")
        assert Image.open(tmp_path / "out" / rel).size == (8, 8)
    assert read_split_ids(tmp_path / "out", "test") == ["s2"]
    meta = json.loads((tmp_path / "out" / "catalog.json").read_text())
    assert meta["source"] == "catalog" and meta["attributes"] == ["colour"]

    # converting again into the same folder without a split column leaves no stale split files
    table = make_shop(tmp_path / "shop")
    mapping.pop("split")
    assert convert_source("catalog", table, tmp_path / "out", mapping=mapping)["splits"] == {}
    assert not list((tmp_path / "out" / "splits").glob("*.txt"))


def test_catalog_jsonl_and_parquet_give_the_same_catalog(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow (installed with datasets) is needed for Parquet")
    import pyarrow.parquet as pq

    png(tmp_path / "src" / "img" / "x.png")
    rows = [
        {"id": 101, "title": "Blue kettle", "category": "Home", "images": ["img/x.png"],
         "attributes": {"colour": "blue", "litres": 1.5}, "queries": ["kettle"]},
        {"id": 102, "title": "Red kettle", "category": "Home", "images": "img/x.png",
         "attributes": {"colour": "red", "litres": 2}, "queries": []},
    ]
    write_jsonl(tmp_path / "src" / "p.jsonl", rows)
    pq.write_table(pa.Table.from_pylist(rows[:1]), tmp_path / "src1.parquet")  # mixed types: one row
    shutil.copytree(tmp_path / "src" / "img", tmp_path / "img")
    convert_source("catalog", tmp_path / "src" / "p.jsonl", tmp_path / "a")
    convert_source("catalog", tmp_path / "src1.parquet", tmp_path / "b")
    a = [p.to_dict() for p in load_catalog(tmp_path / "a")]
    b = [p.to_dict() for p in load_catalog(tmp_path / "b")]
    # integer ids and numeric attribute values become strings; a string image cell becomes a list
    assert a[0]["id"] == "101" and a[0]["attributes"] == {"colour": "blue", "litres": "1.5"}
    assert a[1]["images"] == a[0]["images"] and len(a[1]["images"]) == 1
    assert b == a[:1]


def test_catalog_folder_needs_exactly_one_table(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "title": "t", "category": "c"}])
    report = convert_source("catalog", tmp_path, tmp_path / "out")  # one table: found by itself
    assert report["records"] == 1
    write_csv(tmp_path / "b.csv", ["id", "title", "category"], [["2", "u", "c"]])
    with pytest.raises(DataPrepError, match=r"exactly one table.*\['a.jsonl', 'b.csv'\]"):
        convert_source("catalog", tmp_path, tmp_path / "out2")


def test_skip_mode_counts_and_reports_reasons(tmp_path):
    table = write_jsonl(
        tmp_path / "cat" / "p.jsonl",
        [{"id": "1", "title": "ok", "category": "c"}, {"id": "2", "title": "", "category": "c"},
         {"id": "3", "title": "ok", "category": "c", "images": ["missing.png"]}],
    )
    report = convert_source("catalog", table, tmp_path / "out", on_error="skip")
    assert report["records"] == 1 and report["skipped"] == 2
    assert f"{table}:2 (id='2'): field 'title'" in report["skip_reasons"][0]
    assert f"{table}:3 (id='3'): field 'images'" in report["skip_reasons"][1]
    assert "skipped 2 bad rows" in format_report(report)
    only_bad = write_jsonl(tmp_path / "bad" / "p.jsonl", [{"id": "2", "title": "", "category": "c"}])
    with pytest.raises(DataPrepError, match="all 1 rows were bad"):
        convert_source("catalog", only_bad, tmp_path / "out2", on_error="skip")


# ---------------------------------------------------------------- ae110k / oamine


def test_ae110k_takes_top_value_skips_na_and_keeps_splits(tmp_path):
    write_jsonl(tmp_path / "ds" / "train.jsonl", [
        {"input": "ACME Lure 85mm 20g", "category": "Lure",
         "target_scores": {"Brand Name": {"ACME": 1}, "Weight": {"n/a": 1}, "Size": {"S": 0.2, "85mm": 0.9}}},
    ])
    write_jsonl(tmp_path / "ds" / "test.jsonl", [
        {"input": "Cap", "category": "Baseball Caps", "target_scores": {"Material": {"N/A": 1}}},
        {"input": "Hat", "category": "Baseball Caps", "target_scores": {"Material": {"Cotton": 1}}},
    ])
    (tmp_path / "ds" / "train_0.2.jsonl").write_text("not read\n")
    report = convert_source("ae110k", tmp_path / "ds", tmp_path / "out")
    assert report["splits"] == {"train": 1, "test": 2} and report["groups"] == 3
    products = {p.id: p for p in load_catalog(tmp_path / "out")}
    assert set(products) == {"train-1", "test-1", "test-2"}
    assert products["train-1"].attributes == {"Brand Name": "ACME", "Size": "85mm"}
    assert products["test-1"].attributes == {} and products["test-2"].category == "Baseball Caps"


def test_ae110k_wrong_shape_names_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [
        {"input": "ok", "category": "c", "target_scores": {}},
        {"input": "bad", "category": "c", "target_scores": {"Brand": "ACME"}},
    ])
    with pytest.raises(DataPrepError, match=rf"{path}:2 \(id='x-2'\): field 'target_scores': attribute 'Brand'"):
        convert_source("oamine", path, tmp_path / "out")


@pytest.mark.parametrize("source,folder", [("ae110k", "ae-110k"), ("oamine", "oa-mine")])
def test_real_attribute_datasets(tmp_path, source, folder):
    ds = REAL / "ae110k_oamine" / "data" / "processed_datasets" / folder
    if not ds.is_dir():
        pytest.skip(f"real data folder {ds} is absent")
    report = convert_source(source, ds, tmp_path / "out")
    lines = {s: sum(1 for line in open(ds / f"{s}.jsonl") if line.strip()) for s in ("train", "test")}
    assert report["splits"] == lines and report["skipped"] == 0
    products = load_catalog(tmp_path / "out", split="test")
    assert all("n/a" not in p.attributes.values() for p in products)
    assert sum(bool(p.attributes) for p in products) > len(products) // 2


# ---------------------------------------------------------------- matching


def make_matching(root: Path) -> Path:
    write_csv(root / "tableA.csv", ["id", "name", "description", "price"],
              [["0", "sony tv 40", "a tv", "399"], ["1", "sony tv forty inch", "", ""],
               ["2", "bose speaker", "", "99"], ["3", "apple cable", "", ""]])
    write_csv(root / "tableB.csv", ["id", "name", "description", "price"],
              [["0", "Sony TV 40in", "", ""], ["1", "Apple USB cable", "", ""],
               ["2", "Bose SoundLink", "", ""], ["3", "Nikon camera", "", ""]])
    write_csv(root / "train.csv", ["ltable_id", "rtable_id", "label"],
              [["0", "0", "1"], ["1", "0", "1"], ["3", "3", "0"]])
    write_csv(root / "valid.csv", ["ltable_id", "rtable_id", "label"], [["2", "3", "0"], ["0", "1", "0"]])
    write_csv(root / "test.csv", ["ltable_id", "rtable_id", "label"], [["2", "2", "1"], ["3", "1", "0"]])
    return root


def test_matching_groups_splits_and_records(tmp_path):
    report = convert_source("matching", make_matching(tmp_path / "m"), tmp_path / "out")
    assert report["records"] == 8
    products = {p.id: p for p in load_catalog(tmp_path / "out")}
    # positives A0-B0 and A1-B0 make one group (transitively), named by its smallest id
    assert products["A-0"].group_id == products["A-1"].group_id == products["B-0"].group_id == "A-0"
    assert products["A-2"].group_id == products["B-2"].group_id != products["A-3"].group_id
    assert products["A-0"].attributes == {"price": "399"} and products["A-0"].description == "a tv"
    assert products["A-0"].category == "Unknown"
    split = lambda name: read_split_ids(tmp_path / "out", name)  # noqa: E731
    assert split("query") == ["A-2"]
    assert split("corpus") == ["B-0", "B-1", "B-2", "B-3"]
    assert sorted(split("test")) == ["A-2", "A-3", "B-1", "B-2"]
    assert sorted(split("train")) == ["A-0", "A-1", "A-3", "B-0", "B-3"]
    # A-2's group has a positive test pair, so it is kept out of valid although it occurs in a valid pair
    assert sorted(split("valid")) == ["A-0", "B-1", "B-3"]


def test_matching_bad_pair_names_file_line_and_field(tmp_path):
    root = make_matching(tmp_path / "m")
    write_csv(root / "test.csv", ["ltable_id", "rtable_id", "label"], [["2", "2", "1"], ["3", "99", "0"]])
    with pytest.raises(DataPrepError, match=rf"{root / 'test.csv'}:3: field 'rtable_id': no row with id '99' in tableB"):
        convert_source("matching", root, tmp_path / "out")
    report = convert_source("matching", root, tmp_path / "out", on_error="skip")
    assert report["skipped"] == 1 and report["splits"]["query"] == 1
    (root / "tableB.csv").unlink()
    with pytest.raises(DataPrepError, match="tableB.csv: missing table"):
        convert_source("matching", root, tmp_path / "out")


def test_matching_title_column_missing_suggests_map(tmp_path):
    root = make_matching(tmp_path / "m")
    write_csv(root / "tableA.csv", ["id", "label_text"], [["0", "x"]])
    with pytest.raises(DataPrepError, match=r"tableA.csv: missing column\(s\) \['title'\].*--map title=COLUMN"):
        convert_source("matching", root, tmp_path / "out")
    for table in ("tableA.csv", "tableB.csv"):
        write_csv(root / table, ["id", "product"], [[str(i), f"item {i}"] for i in range(4)])
    report = convert_source("matching", root, tmp_path / "out", mapping={"title": "product"})
    assert report["records"] == 8
    assert {p.title for p in load_catalog(tmp_path / "out")} == {f"item {i}" for i in range(4)}


# walmart-amazon_1 (22k offers, ~1 s) is left to the measured run; these two cover both table layouts.
@pytest.mark.parametrize("dataset", ["abt-buy", "wdc-block-small"])
def test_real_matching_datasets_give_answerable_queries(tmp_path, dataset):
    root = REAL / "product_matching" / dataset
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent")
    report = convert_source("matching", root, tmp_path / "out")
    assert report["skipped"] == 0 and report["records"] == report["splits"]["corpus"] + count_rows(root / "tableA.csv")
    products = {p.id: p for p in load_catalog(tmp_path / "out")}
    corpus_groups = {products[i].group_id for i in read_split_ids(tmp_path / "out", "corpus")}
    queries = read_split_ids(tmp_path / "out", "query")
    assert queries and all(q.startswith("A-") and products[q].group_id in corpus_groups for q in queries)
    query_groups = {products[q].group_id for q in queries}
    assert not any(products[i].group_id in query_groups for i in read_split_ids(tmp_path / "out", "train"))


def count_rows(path: Path) -> int:
    with open(path, encoding="utf-8", newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


# ---------------------------------------------------------------- implicitave: tests/data_prep/test_implicitave.py


# ---------------------------------------------------------------- CLI


def test_cli_data_prepare(tmp_path):
    try:
        from moon_rl.cli import app
        from moon_rl.cli import data as data_cli  # noqa: F401
    except ImportError:
        pytest.skip("moon_rl/cli/data.py (the `moon-rl data prepare` command) is not in the tree yet")
    from typer.testing import CliRunner

    table = make_shop(tmp_path / "shop")
    args = ["data", "prepare", "--source", "catalog", "--input", str(table), "--out", str(tmp_path / "out"),
            "--map", "id=sku", "--map", "title=product_name", "--map", "category=cat", "--map", "images=img_path"]
    result = CliRunner().invoke(app, args)
    if result.exit_code == 2 and "No such command" in result.output:
        pytest.skip("`moon-rl data prepare` is not registered yet")
    assert result.exit_code == 0, result.output
    assert len(load_catalog(tmp_path / "out")) == 3
    args = ["data", "prepare", "--source", "nope", "--input", str(table), "--out", str(tmp_path / "o")]
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 2 and "unknown source 'nope'" in bad.output
