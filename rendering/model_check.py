"""Checks on a product model file before any render: cheap, without Blender, with errors that name the
file and the reason. The import in the worker checks the rest (geometry, size)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

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


MAX_EXTENT = 1e4  # units across: a product 10 km across is a unit mistake, not a product
MIN_EXTENT = 1e-5


def resolve_slot(slot: str, names: list[str], path: str | Path = "model") -> str:
    """The material a colourway slot names: the exact name first, else the one Blender duplicate
    (``Material.001``) it stands for when there is only one; anything else is refused naming the choices."""
    if slot in names:
        return slot
    duplicates = [n for n in names if n.rsplit(".", 1)[0] == slot and n.rsplit(".", 1)[-1].isdigit()]
    if len(duplicates) == 1:
        return duplicates[0]
    if duplicates:
        raise ModelError(f"{path}: colourway slot {slot!r} is ambiguous: it could be {sorted(duplicates)}")
    raise ModelError(f"{path}: colourway names material slot {slot!r}; the model has {sorted(names)}")


def check_bundle_sizes(products: list[tuple[str | Path, float | None]]) -> None:
    """A bundle shows its products at their real sizes: each needs a file that states its unit (glTF is in
    metres, a .blend in its scene's units) or a stated height. ``products``: (model file, height_m or None)."""
    if len(products) < 2:
        return
    for path, height_m in products:
        if height_m is None and Path(path).suffix.lower() == ".obj":
            raise ModelError(f"{path}: an OBJ carries no unit: give its height_m to size it in the bundle")


def check_render_inputs(path: str | Path, colourway: dict[str, str] | None = None) -> None:
    """Refuse, before any render, a colourway slot the model does not have (or names ambiguously) and an
    absurd model size. Reads GLB/glTF and OBJ without Blender; a .blend is checked by the worker's import."""
    path = check_model_file(path)
    suffix = path.suffix.lower()
    if suffix == ".blend":
        return
    names, lo, hi = _obj_facts(path) if suffix == ".obj" else _gltf_facts(path)
    for slot in colourway or {}:
        resolve_slot(slot, names, path)
    if lo is not None:
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ModelError(f"{path}: the model has non-finite vertex positions")
        largest = float(np.max(hi - lo))
        if largest > MAX_EXTENT:
            raise ModelError(f"{path}: absurd model size ({largest:g} units across; at most {MAX_EXTENT:g})")
        if largest < MIN_EXTENT:
            raise ModelError(f"{path}: the model has zero size ({largest:g} units across)")


def _obj_facts(path: Path) -> tuple[list[str], np.ndarray | None, np.ndarray | None]:
    names: list[str] = []
    lo = hi = None
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("v "):
                rows.append(line.split()[1:4])
            elif line.startswith("usemtl "):
                name = line.split(maxsplit=1)[1].strip()
                if name not in names:
                    names.append(name)
    if rows:
        try:
            vertices = np.array(rows, dtype=float)
        except ValueError:
            raise ModelError(f"{path}: a vertex line does not hold three numbers") from None
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    return names, lo, hi


def _gltf_facts(path: Path) -> tuple[list[str], np.ndarray | None, np.ndarray | None]:
    if path.suffix.lower() == ".glb":
        with open(path, "rb") as fh:
            fh.seek(12)
            chunk_len, _ = struct.unpack("<II", fh.read(8))
            document = _json(path, fh.read(chunk_len))
    else:
        document = _json(path, path.read_bytes())
    names = [m["name"] for m in document.get("materials", []) if isinstance(m, dict) and m.get("name")]
    accessors, meshes, nodes = document.get("accessors", []), document.get("meshes", []), document.get("nodes", [])
    corners = []

    def visit(index: int, parent: np.ndarray, depth: int = 0) -> None:
        if depth > 64 or not (0 <= index < len(nodes)):
            return
        node = nodes[index]
        world = parent @ _node_matrix(node)
        mesh = node.get("mesh")
        if isinstance(mesh, int) and 0 <= mesh < len(meshes):
            for primitive in meshes[mesh].get("primitives", []):
                accessor = primitive.get("attributes", {}).get("POSITION")
                if isinstance(accessor, int) and 0 <= accessor < len(accessors):
                    a = accessors[accessor]
                    if len(a.get("min", [])) == 3 and len(a.get("max", [])) == 3:
                        box = np.array(
                            [
                                [x, y, z, 1.0]
                                for x in (a["min"][0], a["max"][0])
                                for y in (a["min"][1], a["max"][1])
                                for z in (a["min"][2], a["max"][2])
                            ]
                        )
                        corners.append((box @ world.T)[:, :3])
        for child in node.get("children", []):
            visit(child, world, depth + 1)

    scenes = document.get("scenes", [])
    roots = scenes[document.get("scene", 0)].get("nodes", []) if scenes else range(len(nodes))
    for root in roots:
        visit(root, np.eye(4))
    if not corners:
        return names, None, None
    points = np.concatenate(corners)
    return names, points.min(axis=0), points.max(axis=0)


def _node_matrix(node: dict) -> np.ndarray:
    if len(node.get("matrix", [])) == 16:
        return np.array(node["matrix"], dtype=float).reshape(4, 4).T  # glTF matrices are column-major
    t = np.array(node.get("translation", [0, 0, 0]), dtype=float)
    x, y, z, w = node.get("rotation", [0, 0, 0, 1])
    s = np.array(node.get("scale", [1, 1, 1]), dtype=float)
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    m = np.eye(4)
    m[:3, :3] = r * s
    m[:3, 3] = t
    return m
