"""Prompt and reasoning-trace formats shared by SFT, GRPO, evaluation and inference.

A prompt is one user message: the product image(s) first (VL models), then the instruction, the category, the
title (and description when there is one), the attribute names to fill and, for closed-set attributes, the
allowed values. The target is a trace in the project's contract format:

    <think>
    A product from Clothing > Tops > Shirts. I go through its attributes one by one, using the title and the image.
    - colour: the title says 'Navy' -> colour: navy
    - pattern: the title does not say; the image shows stripes -> pattern: striped
    </think>
    <answer>{"colour": "navy", "pattern": "striped"}</answer>

Template traces are built from the known attributes (`build_trace`); each line says where the value comes from:
the title (quoting the words found), the description, the image (for attributes that images show), or, for
anything else, that it is not stated. Which attributes an image shows is the synthetic taxonomy's list unless
the catalog names them (`image_attributes` in catalog.json; ImplicitAVE says "all", its values being implicit).
The `compact` trace style (`moon-rl data prepare --trace compact`) is one line, which of the attributes asked for the
title states (the rest are left out of the answer), then the answer: about half the tokens of the template, for
small models and CPU budgets:

    <think>
    Stated in the title: Brand Name, Length.
    </think>
    <answer>{"Brand Name": "SEAPESCA", "Length": "150mm"}</answer>

Which attribute names a prompt asks for: the catalog's schema for the product's category when catalog.json has one
(`category_attributes`, written by the AE-110K / OA-Mine converter), else the product's own attributes.
A record's own `reasoning` (say, from a teacher model) wins over the template: a full trace is used as is (after a format check), free text becomes the `<think>` part and the
`<answer>` is built from the attributes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from data_prep.errors import DataPrepError
from data_prep.schema import Product, catalog_meta
from data_prep.taxonomy import VISUAL_ATTRIBUTES, surface_forms

INSTRUCTION = (
    "Identify the attributes of this product. Go through them one by one inside <think></think>, saying for each "
    "where its value is shown (the title, the description or the image), then give the attributes as a JSON object "
    "of attribute name to value inside <answer></answer>."
)
QUERY_INSTRUCTION = (
    "A shopper searched for a product with this query. Go through the attributes the query asks for one by one "
    "inside <think></think>, then give them as a JSON object of attribute name to value inside <answer></answer>."
)

TRACE_STYLES = ("template", "compact")

TRACE_RE = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)

# How a trace names what the image shows, for values that do not read well on their own.
_PATTERN_SEEN = {"striped": "stripes", "dotted": "dots", "checked": "checks", "plain": "a plain fill, no pattern"}
_SELF_DESCRIBING = {"sleeve", "neckline", "handle", "strap", "height", "sole", "rim"}


def answer_json(attrs: dict[str, str]) -> str:
    """The `<answer>` payload: a one-line JSON object, attributes in the record's order."""
    return json.dumps(attrs, ensure_ascii=False)


def parse_trace(text: str) -> tuple[str, dict[str, Any]] | None:
    """Split a trace into (think text, answer object); None when it does not follow the format."""
    match = TRACE_RE.fullmatch(text)
    if not match:
        return None
    try:
        answer = json.loads(match["answer"])
    except json.JSONDecodeError:
        return None
    return (match["think"].strip(), answer) if isinstance(answer, dict) else None


def find_mention(text: str | None, value: str) -> str | None:
    """The words of `text` that state `value` (any of its spellings, whole words, any case), or None."""
    if not text:
        return None
    for form in surface_forms(value):
        match = re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text, flags=re.IGNORECASE)
        if match:
            return match.group(0)
    return None


def image_paths(product: Product, catalog_dir: str | Path) -> list[Path]:
    """Absolute paths of the product's images; a missing file, or a path that leaves the catalog folder
    (`..`, absolute, a symlink pointing outside: `data_prep.images.resolve_image_path`), raises naming the record."""
    from data_prep.images import resolve_image_path

    paths = []
    for rel in product.images:
        path = Path(catalog_dir) / rel
        if path.exists():
            try:
                path = resolve_image_path(rel, catalog_dir)
            except DataPrepError as err:
                raise DataPrepError(f"{Path(catalog_dir) / 'products.jsonl'}: record id={product.id!r}: field 'images': {err}") from None
        if not path.is_file():
            raise DataPrepError(
                f"{Path(catalog_dir) / 'products.jsonl'}: record id={product.id!r}: field 'images': file {path} "
                "does not exist; fix the path, remove it from the record, or prepare with --no-images"
            )
        paths.append(path)
    return paths


def category_schema(catalog_dir: str | Path | None) -> dict[str, list[str]]:
    """{category: attribute names} from the catalog's catalog.json (`category_attributes`); {} when it has none."""
    schema = catalog_meta(catalog_dir, "category_attributes") if catalog_dir is not None else None
    if not isinstance(schema, dict):
        return {}
    return {
        c: [str(n) for n in names] for c, names in schema.items() if isinstance(names, list) and names
    }


def attribute_names(product: Product, schema: dict[str, list[str]] | None = None) -> list[str]:
    """The attribute names a prompt asks for: the category's schema when the catalog has one (so attributes the
    title does not state are asked too: negatives), else the product's own labelled attributes."""
    return list((schema or {}).get(product.category) or product.attributes)


def prompt_text(
    product: Product,
    *,
    instruction: str = INSTRUCTION,
    text_label: str = "title",
    candidates: list[str] | None = None,
    names: list[str] | None = None,
) -> str:
    """The text part of the prompt. `names`: the attribute names to fill (default: the product's own, see
    `attribute_names`); `candidates` lists attribute names the text *may* state (query rows) instead."""
    lines = [instruction, "", f"Category: {product.category}", f"{text_label.capitalize()}: {product.title}"]
    if product.description:
        lines.append(f"Description: {product.description}")
    names = list(product.attributes) if names is None else names
    if candidates is not None:
        lines.append(f"Attributes it may state: {', '.join(candidates)}")
    elif names:
        lines.append(f"Attributes: {', '.join(names)}")
    for name, allowed in product.options.items():
        lines.append(f"Allowed values for {name}: {' | '.join(allowed)}")
    return "\n".join(lines)


def user_message(text: str, n_images: int = 0, parts: bool | None = None) -> dict[str, Any]:
    """One user turn. With `parts` (default: when there are images) the content is a list of parts, one
    {"type": "image"} placeholder per image then the text (what TRL's VL collators fill in); else the string."""
    if parts is None:
        parts = n_images > 0
    if not parts:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]}


def build_prompt(
    product: Product, catalog_dir: str | Path, with_images: bool = True, **text_kwargs: Any
) -> tuple[list[dict[str, Any]], list]:
    """The conversational prompt for one product and its images (PIL, RGB).

    With images: content is a list of parts, one {"type": "image"} per image then the text (the layout TRL's
    VL collators fill in). Without: content is the plain string. `text_kwargs` go to `prompt_text`.
    """
    if "candidates" not in text_kwargs:
        text_kwargs.setdefault("names", attribute_names(product, category_schema(catalog_dir)))
    text = prompt_text(product, **text_kwargs)
    if not with_images:
        return [user_message(text)], []
    from PIL import Image

    images = []
    for path in image_paths(product, catalog_dir):
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
    return [user_message(text, len(images), parts=True)], images


def _seen_in_image(name: str, value: str) -> str:
    if name == "pattern" and value in _PATTERN_SEEN:
        return _PATTERN_SEEN[value]
    if name in ("colour", "color"):
        return f"a {value} colour"
    if name not in VISUAL_ATTRIBUTES:  # a real catalog's name ("Sleeve Style"): its values read on their own
        return value
    return value if name in _SELF_DESCRIBING else f"{value} {name}"


def shown_in_image(name: str, image_attributes: Collection[str] | str | None = None) -> bool:
    """Whether an image may show attribute `name`: `image_attributes` lists the names ("all": every one);
    the default is the synthetic taxonomy's `VISUAL_ATTRIBUTES`. A catalog says it in catalog.json
    (`"image_attributes"`), e.g. ImplicitAVE, whose values are by design inferred from the image."""
    if image_attributes == "all":
        return True
    return name in (VISUAL_ATTRIBUTES if image_attributes is None else image_attributes)


def _template_lines(
    product: Product, text_label: str, has_images: bool, image_attributes: Collection[str] | str | None
) -> list[str]:
    lines = []
    for name, value in product.attributes.items():
        said = find_mention(product.title, value)
        described = find_mention(product.description, value)
        if said:
            why = f"the {text_label} says '{said}'"
        elif described:
            why = f"the description says '{described}'"
        elif has_images and shown_in_image(name, image_attributes):
            why = f"the {text_label} does not say; the image shows {_seen_in_image(name, value)}"
        else:
            why = f"the {text_label} does not state it; the most likely value for this product is '{value}'"
        lines.append(f"- {name}: {why} -> {name}: {value}")
    return lines


def build_trace(
    product: Product,
    *,
    text_label: str = "title",
    has_images: bool | None = None,
    image_attributes: Collection[str] | str | None = None,
    style: str = "template",
) -> str:
    """The SFT target for `product`: its own `reasoning` if it has one, else the template (or compact) trace.

    `text_label` names the text the model reads ("title", or "query" for query rows); `has_images` says whether
    the prompt shows images (default: the record lists some); `image_attributes` which attribute values the
    image may show when the text does not state them (see `shown_in_image`); `style` one of `TRACE_STYLES`.
    """
    if style not in TRACE_STYLES:
        raise DataPrepError(f"trace style {style!r}: choose one of {', '.join(TRACE_STYLES)}")
    answer = answer_json(product.attributes)
    if product.reasoning:
        return _teacher_trace(product, answer)
    if style == "compact":
        return f"<think>\n{compact_reasoning(product, text_label)}\n</think>\n<answer>{answer}</answer>"
    has_images = bool(product.images) if has_images is None else has_images
    sources = f"the {text_label} and the image" if has_images else f"the {text_label}"
    if product.attributes and text_label == "query":
        intro = f"A search in {product.category}. I go through the attributes the query states, one by one."
    elif product.attributes:
        intro = f"A product from {product.category}. I go through its attributes one by one, using {sources}."
    else:
        intro = f"The {text_label} names no attributes I can fill."
    think = "\n".join([intro, *_template_lines(product, text_label, has_images, image_attributes)])
    return f"<think>\n{think}\n</think>\n<answer>{answer}</answer>"


def compact_reasoning(product: Product, text_label: str = "title") -> str:
    """One line: which attributes the text states (their values are found in it) and which it implies. The asked
    attributes it names neither way are the negatives, left out of the answer (listing them doubled the tokens).

    >>> compact_reasoning(Product(id="1", title="Acme Lure 5cm", category="Lure",
    ...                           attributes={"Brand": "Acme", "Length": "5cm", "Type": "minnow"}))
    'Stated in the title: Brand, Length. Implied: Type.'
    """
    stated = [n for n, v in product.attributes.items() if find_mention(product.title, v) or find_mention(product.description, v)]
    inferred = [n for n in product.attributes if n not in stated]
    parts = [f"Stated in the {text_label}: {', '.join(stated)}." if stated else f"The {text_label} states none of them."]
    if inferred:
        parts.append(f"Implied: {', '.join(inferred)}.")
    return " ".join(parts)


def _teacher_trace(product: Product, answer: str) -> str:
    text = product.reasoning.strip()
    if "<answer>" in text:
        if parse_trace(text) is None:
            raise DataPrepError(
                f"record id={product.id!r}: field 'reasoning': a full trace must be '<think>...</think>"
                "<answer>{JSON object}</answer>' with nothing after; fix it or give only the reasoning text "
                "(the answer is then built from the attributes)"
            )
        return text
    # Free-text reasoning: keep it as the thinking and answer from the known attributes.
    text = text.removeprefix("<think>").removesuffix("</think>").strip()
    return f"<think>\n{text}\n</think>\n<answer>{answer}</answer>"


# ---- the text an embedding reads (pooling "input", the no-reasoning path, the sentence-transformers export) ----

# Attributes that identify an offer rather than describe it; appended to the title when it does not already
# contain them (matching catalogs keep brand and model number in their own columns).
IDENTIFIER_ATTRIBUTES = ("brand", "brand name", "manufacturer", "modelno", "model", "model number", "model name")


def embedding_text(title: str, attributes: dict[str, Any] | str | None = None) -> str:
    """Title plus identifier attributes (brand, model number) the title lacks: plain text, no template.

    >>> embedding_text("koss eq50 3-band stereo equalizer", {"brand": "koss", "modelno": "152132"})
    'koss eq50 3-band stereo equalizer 152132'
    """
    if isinstance(attributes, str):  # the prepared datasets keep attributes as a JSON string
        try:
            attributes = json.loads(attributes) if attributes.strip() else {}
        except json.JSONDecodeError:
            attributes = {}
    text = (title or "").strip()
    for name, value in (attributes or {}).items():
        value = str(value or "").strip()
        if name.lower() in IDENTIFIER_ATTRIBUTES and value and value.lower() not in text.lower():
            text = f"{text} {value}".strip()
    return text
