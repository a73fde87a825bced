"""Hostile catalogs fail during `data prepare` with one clear line naming the file, line, record and field.

Each case is converted with `--source catalog` (the path users take with their own data); `--on-error skip`
drops exactly the bad rows and counts them.
"""

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from data_prep.errors import DataPrepError
from data_prep.schema import load_catalog
from data_prep.sources import convert_source

GOOD = {"id": "ok", "title": "Navy linen shirt", "category": "Clothing > Shirts"}


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 0, 128)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """~70 bytes whose PNG header declares width x height pixels (30 GB if decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def catalog_with(tmp_path: Path, bad: dict, image: tuple[str, bytes] | None = None) -> Path:
    """products.jsonl with a good row on line 1 and `bad` on line 2 (+ an image file next to it)."""
    root = tmp_path / "shop"
    (root / "img").mkdir(parents=True)
    (root / "img" / "good.png").write_bytes(png_bytes())
    if image:
        (root / "img" / image[0]).write_bytes(image[1])
    rows = [{**GOOD, "images": ["img/good.png"]}, {**GOOD, "id": "bad", **bad}]
    path = root / "products.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def expect_bad_row(tmp_path: Path, table: Path, field: str, pattern: str) -> str:
    """Default policy stops with a one-line message at line 2; skip keeps the good row and counts one."""
    with pytest.raises(DataPrepError, match=pattern) as err:
        convert_source("catalog", table, tmp_path / "out")
    message = str(err.value)
    assert "\n" not in message
    assert f"{table}:2 (id='bad'): field '{field}'" in message, message
    report = convert_source("catalog", table, tmp_path / "out_skip", on_error="skip")
    assert report["records"] == 1 and report["skipped"] == 1
    assert [p.id for p in load_catalog(tmp_path / "out_skip")] == ["ok"]
    return message


def test_corrupt_image(tmp_path):
    table = catalog_with(tmp_path, {"images": ["img/x.jpg"]}, ("x.jpg", b"\xff\xd8\xff garbage, not a JPEG" * 20))
    message = expect_bad_row(tmp_path, table, "images", "not a readable image")
    assert "'img/x.jpg'" in message


def test_truncated_image(tmp_path):
    data = jpeg_bytes()
    table = catalog_with(tmp_path, {"images": ["img/cut.jpg"]}, ("cut.jpg", data[: len(data) // 2]))
    expect_bad_row(tmp_path, table, "images", "corrupt or truncated")


def test_decompression_bomb(tmp_path):
    table = catalog_with(tmp_path, {"images": ["img/bomb.png"]}, ("bomb.png", bomb_png()))
    assert (table.parent / "img" / "bomb.png").stat().st_size < 200
    expect_bad_row(tmp_path, table, "images", "decompression bomb")


def test_image_path_escaping_the_catalog(tmp_path):
    table = catalog_with(tmp_path, {"images": ["../../etc/passwd"]})
    message = expect_bad_row(tmp_path, table, "images", "escapes the catalog folder")
    assert "'../../etc/passwd'" in message
    assert not list((tmp_path / "out_skip" / "images").glob("*passwd*"))


def test_image_url_not_fetched_without_flag(tmp_path, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("must not touch the network"))
    table = catalog_with(tmp_path, {"images": ["https://cdn.example.com/shirt.jpg"]})
    expect_bad_row(tmp_path, table, "images", "--allow-remote-images")


def test_missing_title(tmp_path):
    table = catalog_with(tmp_path, {"title": "   "})
    expect_bad_row(tmp_path, table, "title", "expected a non-empty string")


def test_wrong_type(tmp_path):
    table = catalog_with(tmp_path, {"attributes": ["colour", "navy"]})
    expect_bad_row(tmp_path, table, "attributes", "expected a JSON object")
    table = catalog_with(tmp_path / "2", {"title": {"en": "shirt"}})
    expect_bad_row(tmp_path / "2", table, "title", "expected a non-empty string")


def test_duplicate_id(tmp_path):
    table = catalog_with(tmp_path, {"id": "ok"})
    with pytest.raises(DataPrepError, match="duplicate id") as err:
        convert_source("catalog", table, tmp_path / "out")
    assert f"{table}:2 (id='ok'): field 'id': duplicate id, first seen at {table}:1" in str(err.value)
    report = convert_source("catalog", table, tmp_path / "out_skip", on_error="skip")
    assert report["records"] == 1 and report["skipped"] == 1


def test_non_utf8_jsonl_names_the_line(tmp_path):
    table = catalog_with(tmp_path, {})
    lines = table.read_bytes().splitlines(keepends=True)
    table.write_bytes(lines[0] + lines[1].replace(b"Navy", b"Na\xefve \xff"))
    with pytest.raises(DataPrepError, match="not valid UTF-8") as err:
        convert_source("catalog", table, tmp_path / "out")
    assert f"{table}:2:" in str(err.value)
    assert convert_source("catalog", table, tmp_path / "out_skip", on_error="skip")["skipped"] == 1


def test_non_utf8_csv_names_the_line(tmp_path):
    table = tmp_path / "shop" / "p.csv"
    table.parent.mkdir()
    table.write_bytes(b"id,title,category\n1,Shirt,Clothing\n2,\"Caf\xe9 mug\nwith lid\",Home\n3,Mug,Home\n")
    with pytest.raises(DataPrepError, match="not valid UTF-8") as err:
        convert_source("catalog", table, tmp_path / "out")
    assert f"{table}:3:" in str(err.value)  # the row starts on line 3 (the header is line 1)
    report = convert_source("catalog", table, tmp_path / "out_skip", on_error="skip")
    assert report["records"] == 2 and report["skipped"] == 1


def test_missing_column(tmp_path):
    table = tmp_path / "p.csv"
    table.write_text("id,name,category\n1,Shirt,Clothing\n", encoding="utf-8")
    with pytest.raises(DataPrepError, match=r"missing column\(s\) \['title'\]") as err:
        convert_source("catalog", table, tmp_path / "out", on_error="skip")  # a file problem: skip cannot help
    assert str(table) in str(err.value) and "--map title=" in str(err.value)
    with pytest.raises(DataPrepError, match=r"missing column\(s\) \['product_name'\]"):
        convert_source("catalog", table, tmp_path / "out", mapping={"title": "product_name"})
    assert convert_source("catalog", table, tmp_path / "out", mapping={"title": "name"})["records"] == 1


def test_wrong_cell_format_in_csv(tmp_path):
    table = tmp_path / "p.csv"
    table.write_text('id,title,category,attributes\n1,Shirt,Clothing,"{""colour"": ""navy""}"\n'
                     "2,Mug,Home,colour=white\n", encoding="utf-8")
    with pytest.raises(DataPrepError, match=rf"{table}:3 \(id='2'\): field 'attributes': not a valid JSON object"):
        convert_source("catalog", table, tmp_path / "out")


@pytest.mark.parametrize("content", [b"", b"\n\n", b"id,title,category\n"])
def test_empty_dataset(tmp_path, content):
    table = tmp_path / ("p.csv" if content.startswith(b"id") else "p.jsonl")
    table.write_bytes(content)
    with pytest.raises(DataPrepError, match="empty dataset") as err:
        convert_source("catalog", table, tmp_path / "out")
    assert str(table) in str(err.value)
    assert not (tmp_path / "out" / "products.jsonl").exists()


def test_empty_csv_file(tmp_path):
    table = tmp_path / "p.csv"
    table.write_bytes(b"")
    with pytest.raises(DataPrepError, match=rf"{table}: empty dataset"):
        convert_source("catalog", table, tmp_path / "out")


def test_all_hostile_rows_skipped_together(tmp_path):
    root = tmp_path / "shop"
    (root / "img").mkdir(parents=True)
    (root / "img" / "good.png").write_bytes(png_bytes())
    (root / "img" / "bomb.png").write_bytes(bomb_png())
    (root / "img" / "junk.jpg").write_bytes(b"junk")
    bad = [
        {"images": ["img/bomb.png"]}, {"images": ["img/junk.jpg"]}, {"images": ["../../etc/passwd"]},
        {"images": ["http://x.example/a.jpg"]}, {"title": ""}, {"attributes": 3}, {"category": None},
    ]
    rows = [{**GOOD, "images": ["img/good.png"]}] + [{**GOOD, "id": f"b{i}", **b} for i, b in enumerate(bad)]
    rows.append(dict(GOOD))  # duplicate id
    table = root / "products.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = convert_source("catalog", table, tmp_path / "out", on_error="skip")
    assert report["records"] == 1 and report["skipped"] == len(bad) + 1 and report["images"] == 1
    assert len(report["skip_reasons"]) == len(bad) + 1
    for line, reason in enumerate(report["skip_reasons"], start=2):
        assert reason.startswith(f"{table}:{line} ")
