"""Checks on a product model file before any render: cheap, without Blender, with errors that name the
file and the reason. The import in the worker checks the rest (geometry, size)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

FORMATS = (".glb", ".gltf", ".obj", ".blend")
MAX_BYTES = 2 << 30


class ModelError(ValueError):
    """A product model that cannot be used; the message names the file and the reason."""


def check_model_file(path: str | Path) -> Path:
    """Return the path if it looks like a model we can import, else raise ModelError saying why not."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ModelError(f"{path}: unsupported model format {suffix!r} (use {', '.join(FORMATS)})")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path}: the file is empty")
    if size > MAX_BYTES:
        raise ModelError(f"{path}: {size / 2**30:.1f} GiB is too large for a product model")
    {".glb": _check_glb, ".gltf": _check_gltf, ".obj": _check_obj, ".blend": _check_blend}[suffix](path)
    return path


def _check_glb(path: Path) -> None:
    with open(path, "rb") as fh:
        header = fh.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            raise ModelError(f"{path}: not a GLB file (no glTF header)")
        version, length, chunk_len, chunk_type = struct.unpack("<IIII", header[4:20])
        if version != 2:
            raise ModelError(f"{path}: glTF version {version} is not supported (need 2)")
        if length != path.stat().st_size:
            raise ModelError(
                f"{path}: truncated or padded GLB (header says {length} bytes, file has {path.stat().st_size})"
            )
        if chunk_type != 0x4E4F534A:
            raise ModelError(f"{path}: GLB has no JSON chunk first")
        document = _json(path, fh.read(chunk_len))
    _check_gltf_document(path, document, embedded_buffer=True)


def _check_gltf(path: Path) -> None:
    document = _json(path, path.read_bytes())
    _check_gltf_document(path, document, embedded_buffer=False)


def _json(path: Path, raw: bytes) -> dict:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: the glTF JSON does not parse ({exc})") from None
    if not isinstance(document, dict) or "asset" not in document:
        raise ModelError(f"{path}: not a glTF document (no 'asset')")
    return document


def _check_gltf_document(path: Path, document: dict, embedded_buffer: bool) -> None:
    if not document.get("meshes"):
        raise ModelError(f"{path}: the model has no meshes")
    for kind in ("buffers", "images"):
        for i, item in enumerate(document.get(kind, [])):
            uri = item.get("uri")
            if uri and not uri.startswith("data:") and not (path.parent / uri).is_file():
                raise ModelError(f"{path}: {kind}[{i}] refers to {uri!r}, which is missing next to the model")


def _check_obj(path: Path) -> None:
    vertices = faces = 0
    try:
        with open(path, encoding="utf-8", errors="strict") as fh:
            for line in fh:
                if line.startswith("v "):
                    vertices += 1
                elif line.startswith("f "):
                    faces += 1
                elif line.startswith("mtllib "):
                    library = line.split(maxsplit=1)[1].strip()
                    if not (path.parent / library).is_file():
                        raise ModelError(f"{path}: material library {library!r} is missing next to the model")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not an OBJ file (binary content)") from None
    if vertices < 3 or faces == 0:
        raise ModelError(f"{path}: the model has no faces ({vertices} vertices, {faces} faces)")


def _check_blend(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(7)
    # plain, gzip-compressed (Blender < 3) and zstd-compressed (Blender >= 3) .blend files
    if not (head.startswith(b"BLENDER") or head.startswith(b"\x1f\x8b") or head.startswith(b"\x28\xb5\x2f\xfd")):
        raise ModelError(f"{path}: not a .blend file (no BLENDER header)")
