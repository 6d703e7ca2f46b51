"""The product's own 3D model for the product page: a GLB for the web viewer and a USDZ for iOS AR Quick Look.

Made by Blender from the brief's model file, whatever its format: stood upright as the renders stand it, in
the brief's colourway, at the size its file states. The export runs in a short-lived Blender process (bpy
stays out of the caller) into a temporary folder renamed into place, and is cached by its inputs' hash:
the same model, orientation and colourway export once.

Run as ``python -m rendering.product_model`` with a JSON job on stdin; it prints the record as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from rendering.model_check import ModelError, check_model_file
from rendering.spec import file_sha256

#: How long one export may take before it counts as hung (a large model takes seconds).
EXPORT_TIMEOUT_S = 300.0


class ProductModel(BaseModel):
    """An exported model: where its files are, and what a shop's limits are checked against."""

    model_config = ConfigDict(frozen=True)

    key: str
    glb: Path
    usdz: Path
    size_m: list[float]  # width, depth, height
    triangles: int
    source: str

    @classmethod
    def load(cls, folder: Path) -> ProductModel | None:
        try:
            model = cls.model_validate_json((folder / "model.json").read_text())
        except (OSError, ValueError):
            return None
        return model if model.glb.is_file() and model.usdz.is_file() else None


def model_key(model_path: Path, orientation: str, colourway: dict[str, str], height_m: float | None = None) -> str:
    """The export's identity: the model's bytes, how it is stood, sized and coloured, and the Blender that made
    it."""
    spec = {
        "model": file_sha256(model_path),
        "orientation": orientation,
        "height_m": height_m,
        "colourway": dict(sorted(colourway.items())),
        "bpy": version("bpy"),
        "exporter": 1,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def export_product_model(
    model_path: str | Path,
    orientation: str,
    colourway: dict[str, str],
    out_root: str | Path,
    height_m: float | None = None,
) -> ProductModel:
    """The GLB and USDZ of a product under ``out_root/<key>/``, exported now unless they already are;
    ``height_m`` tall when given (the brief's ``product.height_m``), else at the size the file states.

    Raises ModelError naming the file when the model cannot be read or Blender fails on it."""
    model_path = check_model_file(model_path)
    key = model_key(model_path, orientation, colourway, height_m)
    final = Path(out_root) / key
    cached = ProductModel.load(final)
    if cached is not None:
        return cached
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    tmp.chmod(0o755)  # read like the renders beside it, not only by this user
    job = {"model": str(model_path), "orientation": orientation, "colourway": colourway, "height_m": height_m,
           "folder": str(tmp)}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rendering.product_model"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise ModelError(f"{model_path}: 3D model export failed: {lines[-1] if lines else done.returncode}")
        stats = json.loads(done.stdout.strip().splitlines()[-1])
        record = ProductModel(
            key=key, glb=final / "model.glb", usdz=final / "model.usdz", source=str(model_path), **stats
        )
        (tmp / "model.json").write_text(record.model_dump_json(indent=2))
        try:
            os.rename(tmp, final)
        except OSError:  # another run exported the same key meanwhile (same inputs, same files): keep it
            if ProductModel.load(final) is None:
                shutil.rmtree(final, ignore_errors=True)  # a broken leftover: put this export in its place
                os.rename(tmp, final)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{model_path}: 3D model export took over {EXPORT_TIMEOUT_S:.0f} s") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def main() -> int:
    from rendering import scene  # bpy: only in this process

    job = json.loads(sys.stdin.read())
    folder = Path(job["folder"])
    try:
        scene.import_product(job["model"], job["orientation"], job["colourway"])
        stats = scene.export_web_model(folder / "model.glb", folder / "model.usdz", job["height_m"])
    except ModelError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
