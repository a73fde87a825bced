"""What `encode` and `generate` take: products, a shopper's `Query` (text and/or images), or plain dicts and strings
(`as_record`), the chat prompt of each (`record_prompt`, the training prompts' layout), and the order they are
batched in (`longest_first`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_prep.formats import INSTRUCTION, QUERY_INSTRUCTION, build_prompt, user_message
from data_prep.schema import KNOWN_FIELDS, Product
from moon_rl.errors import MoonError


@dataclasses.dataclass
class Query:
    """What a shopper gives: search text, images (paths relative to `catalog_dir`, or PIL images), or both."""

    text: str = ""
    images: list[Any] = dataclasses.field(default_factory=list)
    id: str = ""


def as_record(obj: Any) -> Product | Query:
    if isinstance(obj, (Product, Query)):
        return obj
    if isinstance(obj, str):
        return Query(text=obj)
    if isinstance(obj, dict):
        if obj.get("category"):
            fields = {k: v for k, v in obj.items() if k in KNOWN_FIELDS}
            fields.setdefault("id", "")
            fields.setdefault("title", "")
            return Product(**fields)
        return Query(text=obj.get("title") or obj.get("text") or "", images=list(obj.get("images") or []), id=obj.get("id", ""))
    raise MoonError(f"cannot encode a {type(obj).__name__}; pass Product, Query, dict or str records")


def _open_images(refs: Sequence[Any], catalog_dir: Path) -> list:
    from PIL import Image

    images = []
    for ref in refs:
        if isinstance(ref, Image.Image):
            images.append(ref.convert("RGB"))
            continue
        path = Path(ref) if Path(ref).is_absolute() else catalog_dir / ref
        if not path.is_file():
            raise MoonError(f"query image {path} does not exist (relative paths are resolved against catalog_dir={catalog_dir})")
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
    return images


def record_prompt(record: Product | Query, catalog_dir: Path, with_images: bool) -> tuple[list[dict], list]:
    """(messages, PIL images) for one record; images only when `with_images` (a VL model)."""
    if isinstance(record, Product):
        messages, images = build_prompt(record, catalog_dir, with_images=with_images and bool(record.images))
        if not record.title:  # image-only product: no empty "Title:" line
            text = "\n".join(line for line in _message_text(messages).split("\n") if line != "Title: ")
            messages = [user_message(text, len(images), parts=with_images)]
        elif with_images and not images:
            messages = [user_message(_message_text(messages), 0, parts=True)]  # VL chat layout even without images
        return messages, images
    images = _open_images(record.images, catalog_dir) if with_images else []
    lines = [QUERY_INSTRUCTION if record.text else INSTRUCTION]
    if record.text:
        lines += ["", f"Query: {record.text}"]
    return [user_message("\n".join(lines), len(images), parts=with_images)], images


def _message_text(messages: list[dict]) -> str:
    content = messages[0]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p.get("type") == "text")


def longest_first(records: Sequence[Product | Query]) -> list[int]:
    """Record indices, longest text first (stable): batches of similar lengths pad less, and the first batch is
    the largest, so a batch size that does not fit fails at once (sentence-transformers' `encode` does the same)."""

    def size(record: Product | Query) -> int:
        if isinstance(record, Query):
            return len(record.text)
        return len(record.title) + len(record.description or "") + sum(len(str(k)) + len(str(v)) for k, v in record.attributes.items())

    return sorted(range(len(records)), key=lambda i: -size(records[i]))
