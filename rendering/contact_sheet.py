"""Contact sheets: one PNG with labelled thumbnails, for people to judge a set of renders at a glance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from rendering.outputs import MANIFEST, ManifestError, RenderManifest


def contact_sheet(
    items: Sequence[tuple[str | Path, str] | tuple[str | Path, str, bool]],
    out: str | Path,
    title: str = "",
    cell: int = 240,
    columns: int | None = None,
) -> Path:
    """Lay out ``(image path, label)`` pairs in a grid, each thumbnail fitted into a square cell. An item
    with a third value False (a render its QA refused) gets a red frame and a red label."""
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
    for i, (path, label, *rest) in enumerate(items):
        ok = rest[0] if rest else True
        r, c = divmod(i, columns)
        x, y = pad + c * (cell + pad), head + pad + r * (cell + label_h + pad)
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((cell, cell))
            sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
        draw.rectangle([x, y, x + cell - 1, y + cell - 1], outline="#cccccc" if ok else "#d00000", width=1 if ok else 4)
        for j, line in enumerate(label.splitlines()[:2]):
            draw.text((x + 2, y + cell + 3 + j * 15), line, fill="black" if ok else "#d00000", font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def folder_contact_sheet(folder: str | Path, title: str = "", out: str | Path | None = None) -> Path | None:
    """The contact sheet of every render in ``folder`` (one per ``*/manifest.json``, oldest first), so a
    second ``autoplay render`` into the same folder adds to the sheet; QA failures are marked with a reason."""
    folder = Path(folder)
    items = []
    manifests = sorted(folder.glob(f"*/{MANIFEST}"), key=lambda p: p.stat().st_mtime)
    for path in manifests:
        try:
            manifest = RenderManifest.load(path.parent)
        except ManifestError:
            continue
        if not (path.parent / manifest.still).is_file():
            continue
        qa = manifest.qa
        verdict = "QA pass" if manifest.qa_passed else "QA FAIL: " + "; ".join(qa.get("failures", []))
        job = manifest.job
        label = f"{Path(job.model_path).stem} {job.template} {job.aspect}\n{verdict}"
        items.append((path.parent / manifest.still, label, manifest.qa_passed))
    if not items:
        return None
    return contact_sheet(items, out or folder / "contact_sheet.png", title=title)
