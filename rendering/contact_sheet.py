"""Contact sheets: one PNG with labelled thumbnails, for people to judge a set of renders at a glance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def contact_sheet(
    items: Sequence[tuple[str | Path, str]],
    out: str | Path,
    title: str = "",
    cell: int = 240,
    columns: int | None = None,
) -> Path:
    """Lay out ``(image path, label)`` pairs in a grid, each thumbnail fitted into a square cell."""
    if not items:
        raise ValueError("contact sheet needs at least one image")
    columns = columns or min(len(items), max(1, math.ceil(math.sqrt(len(items) * 1.5))))
    rows = math.ceil(len(items) / columns)
    font = ImageFont.load_default(size=13)
    label_h, pad, head = 34, 10, (36 if title else 0)
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, head + rows * (cell + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 10), title, fill="black", font=ImageFont.load_default(size=18))
    for i, (path, label) in enumerate(items):
        r, c = divmod(i, columns)
        x, y = pad + c * (cell + pad), head + pad + r * (cell + label_h + pad)
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((cell, cell))
            sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
        draw.rectangle([x, y, x + cell - 1, y + cell - 1], outline="#cccccc")
        for j, line in enumerate(label.splitlines()[:2]):
            draw.text((x + 2, y + cell + 3 + j * 15), line, fill="black", font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
