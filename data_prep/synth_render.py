"""PIL drawings of synthetic products: one silhouette per category kind, with the visual attributes drawn in.

`render(kind, attributes, size, view)` returns an RGB image. The body of the product is filled with the
`colour` attribute and overlaid with the `pattern` (stripes, dots, checks or plain); the shape-like attributes
(sleeve, neckline, dress length, mug shape and handle, plate shape and rim, bag straps, sneaker height and sole)
change the silhouette. `View` moves, scales and re-backgrounds the drawing and adds pixel noise, so two views of
one item share every attribute but not a single pixel layout.

Shapes are written in unit coordinates (0..1, y down) and mapped through the view, so one table serves every
image size. Everything is deterministic: noise comes from the caller's `random.Random`, never from PIL's own
generator.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw

from data_prep.taxonomy import COLOURS, SOLE_COLOURS

BACKGROUNDS = ((255, 255, 255), (240, 240, 240), (236, 230, 220), (226, 236, 242), (250, 244, 234))
OUTLINE = (40, 40, 40)

Point = tuple[float, float]
Overlay = Callable[[ImageDraw.ImageDraw], None]  # drawn over the patterned body (outlines, rims, soles)


@dataclasses.dataclass(frozen=True)
class View:
    """How one photo of an item differs from another: placement, background and noise."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    background: tuple[int, int, int] = (255, 255, 255)
    noise: float = 0.0  # blend weight of uniform pixel noise
    noise_seed: int = 0

    @classmethod
    def sample(cls, rng: random.Random) -> View:
        return cls(
            scale=rng.uniform(0.78, 1.05),
            dx=rng.uniform(-0.08, 0.08),
            dy=rng.uniform(-0.08, 0.08),
            background=rng.choice(BACKGROUNDS),
            noise=rng.uniform(0.04, 0.12),
            noise_seed=rng.getrandbits(32),
        )


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> tuple[int, int, int]:
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _contrast(rgb: Sequence[int]) -> tuple[int, int, int]:
    """A pattern colour that reads on `rgb`: darker on light fills, lighter on dark ones."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return _mix(rgb, (0, 0, 0), 0.6) if luminance > 140 else _mix(rgb, (255, 255, 255), 0.65)


class _Canvas:
    """Maps unit coordinates through a `View` and collects the body mask plus what is drawn around it."""

    def __init__(self, size: int, view: View):
        self.size, self.view = size, view
        self.image = Image.new("RGB", (size, size), view.background)
        self.mask = Image.new("L", (size, size), 0)
        self.draw = ImageDraw.Draw(self.image)
        self.mask_draw = ImageDraw.Draw(self.mask)

    def pt(self, x: float, y: float) -> Point:
        v = self.view
        return ((0.5 + (x - 0.5) * v.scale + v.dx) * self.size, (0.5 + (y - 0.5) * v.scale + v.dy) * self.size)

    def pts(self, points: Sequence[Point]) -> list[Point]:
        return [self.pt(x, y) for x, y in points]

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        (a, b), (c, d) = self.pt(x0, y0), self.pt(x1, y1)
        return [a, b, c, d]

    def px(self, unit: float) -> int:
        return max(1, round(unit * self.size * self.view.scale))


def _pattern_layer(size: int, colour: tuple[int, int, int], pattern: str) -> Image.Image:
    layer = Image.new("RGB", (size, size), colour)
    if pattern in ("plain", ""):
        return layer
    ink = _contrast(colour)
    draw = ImageDraw.Draw(layer)
    step = max(4, size // 8)
    if pattern == "striped":
        half = max(1, step // 2)
        for x in range(0, size, step):
            draw.rectangle([x, 0, x + half - 1, size], fill=ink)
    elif pattern == "dotted":
        r = max(1, step // 4)
        for y in range(step // 2, size, step):
            for x in range(step // 2 + (y // step % 2) * (step // 2), size, step):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=ink)
    elif pattern == "checked":
        for y in range(0, size, step):
            for x in range((y // step % 2) * step, size, 2 * step):
                draw.rectangle([x, y, x + step - 1, y + step - 1], fill=ink)
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return layer


def _poly(points: list[Point]) -> Overlay:
    return lambda d: d.polygon(points, outline=OUTLINE)


def _mirror(points: Sequence[Point]) -> list[Point]:
    return [(1 - x, y) for x, y in points]


# Right-hand sleeves from a shoulder at (0.70, 0.25); the left one is the mirror image.
_SLEEVES = {
    "short sleeve": [(0.70, 0.25), (0.84, 0.37), (0.77, 0.45), (0.68, 0.38)],
    "three-quarter sleeve": [(0.70, 0.25), (0.87, 0.56), (0.79, 0.60), (0.68, 0.40)],
    "long sleeve": [(0.70, 0.25), (0.90, 0.76), (0.82, 0.79), (0.68, 0.42)],
    "sleeveless": [],
}


def _top(c: _Canvas, a: dict[str, str], outlines: list[Overlay]) -> None:
    torso = [(0.30, 0.25), (0.42, 0.18), (0.58, 0.18), (0.70, 0.25), (0.68, 0.88), (0.32, 0.88)]
    sleeve = _SLEEVES[a.get("sleeve", "short sleeve")]
    for poly in ([torso, sleeve, _mirror(sleeve)] if sleeve else [torso]):
        c.mask_draw.polygon(c.pts(poly), fill=255)
        outlines.append(_poly(c.pts(poly)))
    neck = a.get("neckline", "crew neck")
    if neck == "v-neck":
        cut = c.pts([(0.43, 0.17), (0.57, 0.17), (0.50, 0.33)])
        c.mask_draw.polygon(cut, fill=0)
        outlines.append(_poly(cut))
    else:
        cut_box = c.box(0.43, 0.13, 0.57, 0.25)
        c.mask_draw.ellipse(cut_box, fill=0)
        outlines.append(lambda d: d.ellipse(cut_box, outline=OUTLINE))


def _shirt_details(c: _Canvas) -> None:
    # A collar and a button placket: what tells a shirt from a T-shirt at a glance.
    for poly in ([(0.42, 0.18), (0.50, 0.27), (0.46, 0.30)], [(0.58, 0.18), (0.50, 0.27), (0.54, 0.30)]):
        c.draw.polygon(c.pts(poly), fill=(250, 250, 250), outline=OUTLINE)
    c.draw.line(c.pts([(0.50, 0.27), (0.50, 0.88)]), fill=OUTLINE, width=1)


def _dress(c: _Canvas, a: dict[str, str], outlines: list[Overlay]) -> None:
    bottom = {"mini": 0.62, "midi": 0.78, "maxi": 0.94}[a.get("length", "midi")]
    flare = (bottom - 0.42) * 0.45
    bodice = [(0.38, 0.20), (0.62, 0.20), (0.60, 0.42), (0.40, 0.42)]
    skirt = [(0.40, 0.42), (0.60, 0.42), (0.60 + flare, bottom), (0.40 - flare, bottom)]
    sleeve = {
        "short sleeve": [(0.62, 0.20), (0.74, 0.30), (0.68, 0.36), (0.61, 0.30)],
        "long sleeve": [(0.62, 0.20), (0.80, 0.62), (0.73, 0.65), (0.60, 0.34)],
        "sleeveless": [],
    }[a.get("sleeve", "sleeveless")]
    for poly in [bodice, skirt] + ([sleeve, _mirror(sleeve)] if sleeve else []):
        c.mask_draw.polygon(c.pts(poly), fill=255)
        outlines.append(_poly(c.pts(poly)))
    cut_box = c.box(0.45, 0.16, 0.55, 0.25)
    c.mask_draw.ellipse(cut_box, fill=0)


def _mug(c: _Canvas, a: dict[str, str], colour: tuple[int, int, int], outlines: list[Overlay]) -> None:
    handle_colour = _mix(colour, (0, 0, 0), 0.15)
    w = c.px(0.06)
    if a.get("handle") == "square handle":
        c.draw.rectangle(c.box(0.56, 0.36, 0.80, 0.68), outline=handle_colour, width=w)
    else:
        c.draw.ellipse(c.box(0.54, 0.34, 0.82, 0.70), outline=handle_colour, width=w)
    shape = a.get("shape", "straight")
    if shape == "barrel":
        c.mask_draw.ellipse(c.box(0.22, 0.18, 0.66, 0.88), fill=255)
        # Flatten top and bottom so the barrel stands like a mug.
        c.mask_draw.rectangle(c.box(0.0, 0.0, 1.0, 0.25), fill=0)
        c.mask_draw.rectangle(c.box(0.0, 0.80, 1.0, 1.0), fill=0)
        rim = c.pts([(0.27, 0.25), (0.61, 0.25)])
        outlines.append(lambda d: d.line(rim, fill=OUTLINE))
    else:
        body = [(0.26, 0.25), (0.62, 0.25), (0.62, 0.80), (0.26, 0.80)]
        if shape == "tapered":
            body = [(0.22, 0.25), (0.66, 0.25), (0.58, 0.80), (0.30, 0.80)]
        c.mask_draw.polygon(c.pts(body), fill=255)
        outlines.append(_poly(c.pts(body)))


def _plate(c: _Canvas, a: dict[str, str], colour: tuple[int, int, int], outlines: list[Overlay]) -> None:
    shape = a.get("shape", "round")
    boxes = {"round": (0.15, 0.15, 0.85, 0.85), "square": (0.17, 0.17, 0.83, 0.83), "oval": (0.08, 0.26, 0.92, 0.74)}
    x0, y0, x1, y1 = boxes[shape]
    inset = 0.09

    def shape_at(d: ImageDraw.ImageDraw, box: list[float], **kw) -> None:
        if shape == "square":
            d.rounded_rectangle(box, radius=c.px(0.06), **kw)
        else:
            d.ellipse(box, **kw)

    shape_at(c.mask_draw, c.box(x0, y0, x1, y1), fill=255)
    outlines.append(lambda d: shape_at(d, c.box(x0, y0, x1, y1), outline=OUTLINE))
    if a.get("rim") == "raised rim":
        inner = c.box(x0 + inset, y0 + inset, x1 - inset, y1 - inset)
        outlines.append(lambda d: shape_at(d, inner, outline=_contrast(colour), width=c.px(0.045)))


def _cushion(c: _Canvas, a: dict[str, str], outlines: list[Overlay]) -> None:
    shape = a.get("shape", "square")
    if shape == "round":
        box = c.box(0.18, 0.18, 0.82, 0.82)
        c.mask_draw.ellipse(box, fill=255)
        outlines.append(lambda d: d.ellipse(box, outline=OUTLINE))
    else:
        box = c.box(0.2, 0.2, 0.8, 0.8) if shape == "square" else c.box(0.1, 0.3, 0.9, 0.72)
        c.mask_draw.rounded_rectangle(box, radius=c.px(0.08), fill=255)
        outlines.append(lambda d: d.rounded_rectangle(box, radius=c.px(0.08), outline=OUTLINE))


def _tote(c: _Canvas, a: dict[str, str], colour: tuple[int, int, int], outlines: list[Overlay]) -> None:
    strap_colour = _mix(colour, (0, 0, 0), 0.35)
    box = (0.33, 0.24, 0.67, 0.52) if a.get("strap") == "short handles" else (0.30, 0.04, 0.70, 0.72)
    c.draw.arc(c.box(*box), 180, 360, fill=strap_colour, width=c.px(0.04))
    body = [(0.25, 0.38), (0.75, 0.38), (0.80, 0.88), (0.20, 0.88)]
    c.mask_draw.polygon(c.pts(body), fill=255)
    outlines.append(_poly(c.pts(body)))


def _sneaker(c: _Canvas, a: dict[str, str], outlines: list[Overlay]) -> None:
    if a.get("height") == "high-top":
        upper = [(0.10, 0.54), (0.40, 0.48), (0.50, 0.20), (0.68, 0.20), (0.74, 0.46), (0.90, 0.58), (0.90, 0.66), (0.10, 0.66)]
    else:
        upper = [(0.10, 0.54), (0.42, 0.50), (0.56, 0.40), (0.72, 0.40), (0.86, 0.52), (0.90, 0.66), (0.10, 0.66)]
    c.mask_draw.polygon(c.pts(upper), fill=255)
    outlines.append(_poly(c.pts(upper)))
    sole = SOLE_COLOURS.get(a.get("sole", ""), (238, 228, 196))
    sole_box = c.box(0.08, 0.66, 0.92, 0.75)
    outlines.append(lambda d: d.rectangle(sole_box, fill=sole, outline=OUTLINE))


def render(kind: str, attributes: dict[str, str], size: int, view: View) -> Image.Image:
    """Draw one product of category `kind` ("tshirt", "shirt", "dress", "mug", "plate", "cushion", "tote",
    "sneaker") with its visual attributes, seen through `view`. Returns an RGB image of `size` x `size`."""
    colour = COLOURS.get(attributes.get("colour", ""), (128, 128, 128))
    c = _Canvas(size, view)
    outlines: list[Overlay] = []
    if kind in ("tshirt", "shirt"):
        _top(c, attributes, outlines)
    elif kind == "dress":
        _dress(c, attributes, outlines)
    elif kind == "mug":
        _mug(c, attributes, colour, outlines)
    elif kind == "plate":
        _plate(c, attributes, colour, outlines)
    elif kind == "cushion":
        _cushion(c, attributes, outlines)
    elif kind == "tote":
        _tote(c, attributes, colour, outlines)
    elif kind == "sneaker":
        _sneaker(c, attributes, outlines)
    else:
        raise ValueError(f"no drawing for category kind {kind!r}")

    c.image.paste(_pattern_layer(size, colour, attributes.get("pattern", "plain")), (0, 0), c.mask)
    for draw_on_top in outlines:  # outlines, rims and soles go over the patterned body
        draw_on_top(c.draw)
    if kind == "shirt":
        _shirt_details(c)

    if view.noise > 0:
        # Grain of 2x2-pixel cells: reads as sensor noise, yet PNG compresses it ~2.5x better than per-pixel noise,
        # which keeps `data synth` of 10k products well under a minute.
        cells = (size + 1) // 2
        grain = Image.frombytes("L", (cells, cells), random.Random(view.noise_seed).randbytes(cells * cells))
        grain = grain.resize((cells * 2, cells * 2), Image.NEAREST).crop((0, 0, size, size)).convert("RGB")
        c.image = Image.blend(c.image, grain, view.noise)
    return c.image
