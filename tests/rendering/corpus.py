"""A corpus of product models the renderer was not built around, generated as OBJ + MTL (nothing downloaded).

Each model is a few boxes and cylinders in real units (metres or centimetres), Y up as OBJ files are, with
named material slots. Together they cover the shapes that broke the stage: flat, wide, tall and thin,
glossy black, pure white and low-poly lying on its side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Mesh:
    """Vertices (x, y up, z) and faces per material slot, written as one OBJ with an MTL beside it."""

    vertices: list[tuple[float, float, float]] = field(default_factory=list)
    faces: dict[str, list[list[int]]] = field(default_factory=dict)

    def _add(self, points: np.ndarray, faces: list[list[int]], material: str) -> None:
        base = len(self.vertices) + 1
        self.vertices += [tuple(map(float, p)) for p in points]
        self.faces.setdefault(material, []).extend([[base + i for i in face] for face in faces])

    def box(self, centre, size, material: str) -> Mesh:
        c, s = np.asarray(centre, float), np.asarray(size, float) / 2
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * s + c
        quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
        self._add(corners, quads, material)
        return self

    def cylinder(self, centre, radius: float, length: float, material: str, axis: int = 1, segments: int = 32):
        """A closed cylinder along ``axis`` (0 x, 1 y up, 2 z)."""
        others = [a for a in range(3) if a != axis]
        points = []
        for end in (-0.5, 0.5):
            for k in range(segments):
                p = np.array(centre, float)
                a = 2 * math.pi * k / segments
                p[others[0]] += radius * math.cos(a)
                p[others[1]] += radius * math.sin(a)
                p[axis] += end * length
                points.append(p)
        side = [[k, (k + 1) % segments, segments + (k + 1) % segments, segments + k] for k in range(segments)]
        caps = [list(range(segments))[::-1], list(range(segments, 2 * segments))]
        self._add(np.array(points), side + caps, material)
        return self

    def write(self, path: Path, materials: dict[str, dict], uv: bool = False) -> Path:
        """``uv``: planar texture coordinates from x and z (enough for a grain to show on every side)."""
        mtl = path.with_suffix(".mtl")
        lines = [f"mtllib {mtl.name}"] + [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in self.vertices]
        if uv:
            v = np.array(self.vertices)
            t = (v - v.min(axis=0)) / np.maximum(np.ptp(v, axis=0), 1e-9)
            lines += [f"vt {a + 0.3 * b:.5f} {c:.5f}" for a, c, b in t]
        for name, faces in self.faces.items():
            lines.append(f"usemtl {name}")
            lines += ["f " + " ".join(f"{i}/{i}" if uv else str(i) for i in face) for face in faces]
        path.write_text("\n".join(lines) + "\n")
        mtl.write_text("".join(_mtl(name, **spec) for name, spec in materials.items()))
        return path


def _mtl(name: str, kd: tuple, roughness: float = 0.5, metallic: float = 0.0, texture: str | None = None) -> str:
    texture_line = f"map_Kd {texture}\n" if texture else ""
    return f"newmtl {name}\nKd {kd[0]} {kd[1]} {kd[2]}\nPr {roughness}\nPm {metallic}\n{texture_line}\n"


def watch(path: Path) -> Path:
    """A wristwatch lying flat, in centimetres: a 4 cm case 1 cm thick on a strap 24 cm long."""
    mesh = Mesh().cylinder((0, 0.5, 0), 2.0, 1.0, "case", axis=1, segments=48)
    mesh.box((0, 0.5, 0), (2.6, 0.2, 2.6), "dial")
    mesh.box((0, 0.15, 0), (24.0, 0.3, 2.0), "strap")
    return mesh.write(
        path,
        {
            "case": {"kd": (0.8, 0.8, 0.82), "roughness": 0.2, "metallic": 1.0},
            "dial": {"kd": (0.05, 0.1, 0.25)},
            "strap": {"kd": (0.35, 0.18, 0.08), "roughness": 0.7},
        },
    )


def tote_bag(path: Path) -> Path:
    """A tote bag lying on its back, in metres: 0.4 x 0.35, 8 cm thick, handles lying out from the top."""
    mesh = Mesh().box((0, 0.04, 0), (0.40, 0.08, 0.35), "canvas")
    mesh.box((-0.08, 0.01, -0.25), (0.03, 0.02, 0.16), "handle").box((0.08, 0.01, -0.25), (0.03, 0.02, 0.16), "handle")
    return mesh.write(path, {"canvas": {"kd": (0.75, 0.68, 0.52), "roughness": 0.9}, "handle": {"kd": (0.3, 0.2, 0.1)}})


def sofa(path: Path) -> Path:
    """A three-seat sofa in metres: 2.1 wide, 0.9 deep, 0.8 tall, on four thin 12 cm legs. Its front faces +Z,
    as in files exported from Blender or written as glTF (the backrest is at -Z)."""
    mesh = Mesh().box((0, 0.32, 0), (2.1, 0.4, 0.9), "fabric")
    mesh.box((0, 0.62, -0.33), (2.1, 0.4, 0.24), "fabric")
    for x in (-0.98, 0.98):
        mesh.box((x, 0.6, 0), (0.14, 0.2, 0.9), "fabric")
    for x in (-0.95, 0.95):
        for z in (-0.38, 0.38):
            mesh.box((x, 0.06, z), (0.04, 0.12, 0.04), "legs")
    return mesh.write(
        path, {"fabric": {"kd": (0.18, 0.32, 0.28), "roughness": 0.95}, "legs": {"kd": (0.1, 0.08, 0.06)}}
    )


def desk(path: Path) -> Path:
    """A desk in metres: a 1.4 x 0.7 top 3 cm thick at 0.75, on four 4 cm legs."""
    mesh = Mesh().box((0, 0.735, 0), (1.4, 0.03, 0.7), "wood")
    for x in (-0.66, 0.66):
        for z in (-0.31, 0.31):
            mesh.box((x, 0.36, z), (0.04, 0.72, 0.04), "steel")
    return mesh.write(path, {"wood": {"kd": (0.55, 0.36, 0.2), "roughness": 0.6}, "steel": {"kd": (0.1, 0.1, 0.1)}})


def floor_lamp(path: Path) -> Path:
    """A floor lamp in metres: 1.5 tall with a 0.45 m shade on a 2.4 cm pole and a 0.3 m base."""
    mesh = Mesh().cylinder((0, 0.01, 0), 0.15, 0.02, "metal", segments=48)
    mesh.cylinder((0, 0.6, 0), 0.012, 1.2, "metal", segments=16)
    mesh.cylinder((0, 1.34, 0), 0.225, 0.32, "shade", segments=48)
    return mesh.write(
        path,
        {
            "metal": {"kd": (0.2, 0.2, 0.2), "roughness": 0.3, "metallic": 1.0},
            "shade": {"kd": (0.9, 0.85, 0.75), "roughness": 0.9},
        },
    )


def glossy_speaker(path: Path) -> Path:
    """A glossy black speaker in centimetres: a 12 x 20 x 10 box with a round grille. Its MTL has no ``Ks``,
    as many exports have not."""
    mesh = Mesh().box((0, 10, 0), (12, 20, 10), "lacquer")
    mesh.cylinder((0, 12, 5.1), 4.0, 0.4, "grille", axis=2, segments=40)
    return mesh.write(
        path,
        {
            "lacquer": {"kd": (0.015, 0.015, 0.015), "roughness": 0.08},
            "grille": {"kd": (0.05, 0.05, 0.05), "roughness": 0.6},
        },
    )


def white_box(path: Path) -> Path:
    """A pure white gift box in centimetres: 15 x 10 x 15 with a lid."""
    mesh = Mesh().box((0, 4.5, 0), (15, 9, 15), "white").box((0, 9.5, 0), (15.6, 1.2, 15.6), "white")
    return mesh.write(path, {"white": {"kd": (1.0, 1.0, 1.0), "roughness": 0.5}})


def low_poly_can(path: Path) -> Path:
    """An 8-sided can lying on its side along x, in centimetres: 12 long, 6.6 across."""
    mesh = Mesh().cylinder((0, 3.3, 0), 3.3, 12.0, "label", axis=0, segments=8)
    return mesh.write(path, {"label": {"kd": (0.7, 0.1, 0.1), "roughness": 0.4}})


def wooden_crate(path: Path) -> Path:
    """A 30 x 20 x 20 cm crate in a striped wood texture (a PNG beside it): a textured slot to tint."""
    from PIL import Image

    x = np.arange(256)
    grain = 0.5 + 0.35 * np.sin(x / 256 * 2 * np.pi * 9 + 1.5 * np.sin(x / 40.0))
    rgb = np.stack([grain * 200 + 40, grain * 140 + 30, grain * 80 + 20], axis=-1)
    Image.fromarray(np.broadcast_to(rgb[None, :, :], (256, 256, 3)).astype(np.uint8)).save(path.with_suffix(".png"))
    mesh = Mesh().box((0, 10, 0), (30, 20, 20), "wood")
    return mesh.write(
        path, {"wood": {"kd": (1, 1, 1), "roughness": 0.6, "texture": path.with_suffix(".png").name}}, uv=True
    )


#: name -> writer, the order the contact sheets show them in.
CORPUS = {
    "watch": watch,
    "tote_bag": tote_bag,
    "sofa": sofa,
    "desk": desk,
    "floor_lamp": floor_lamp,
    "glossy_speaker": glossy_speaker,
    "white_box": white_box,
    "low_poly_can": low_poly_can,
}


def write_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: make(folder / f"{name}.obj") for name, make in CORPUS.items()}
