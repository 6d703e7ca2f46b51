"""The one line every benchmark prints per figure (the JSON-lines format of DESIGN.md)."""

from __future__ import annotations

import json


def figure(name: str, value: float, unit: str, note: str, device: str = "cpu") -> None:
    print(
        json.dumps({"figure": name, "value": round(value, 3), "unit": unit, "device": device, "note": note}),
        flush=True,
    )
