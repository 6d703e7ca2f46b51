"""Product models generated for tests: a bottle in centimetres lying on its side (OBJ), a .blend, a broken file."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

# (position along the bottle in cm, radius in cm): a body, a shoulder and a narrow neck
BOTTLE_PROFILE = [(0.0, 0.0), (0.0, 4.0), (18.0, 4.0), (22.0, 1.6), (26.0, 1.5), (26.0, 0.0)]


def lying_bottle_obj(path: Path, segments: int = 32) -> Path:
    """A 26 cm bottle lathed along +X (lying on its side), base at x=0, in centimetres."""
    lines, rings = ["# a bottle lying on its side, in centimetres"], []
    for x, r in BOTTLE_PROFILE:
        ring = []
        for k in range(segments):
            a = 2 * math.pi * k / segments
            lines.append(f"v {x:.4f} {r * math.cos(a):.4f} {r * math.sin(a):.4f}")
            ring.append(len(lines) - 1)
        rings.append(ring)
    for lower, upper in zip(rings, rings[1:]):
        for k in range(segments):
            a, b = lower[k], lower[(k + 1) % segments]
            c, d = upper[(k + 1) % segments], upper[k]
            lines.append(f"f {a} {b} {c} {d}")
    path.write_text("\n".join(lines) + "\n")
    return path


BLEND_SCRIPT = """
import bpy, sys
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.mesh.primitive_cylinder_add(vertices=48, radius=0.5, depth=1.2, location=(3, 3, 7))
jar = bpy.context.active_object
mat = bpy.data.materials.new("jar_glaze")
mat.use_nodes = True
mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.8, 0.05, 0.05, 1)
jar.data.materials.append(mat)
bpy.ops.mesh.primitive_uv_sphere_add(radius=0.35, location=(3, 3, 7.75))
bpy.ops.mesh.primitive_torus_add(major_radius=0.3, minor_radius=0.08, location=(3.55, 3, 7), rotation=(1.5708, 0, 0))
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])
"""


def mug_blend(path: Path) -> Path:
    """A red mug with a lid and a handle (a turntable visibly turns it), saved by Blender in a subprocess."""
    subprocess.run([sys.executable, "-c", BLEND_SCRIPT, str(path)], check=True, capture_output=True)
    return path


def broken_glb(path: Path) -> Path:
    path.write_bytes(b"glTF\x02\x00\x00\x00 this is not a model")
    return path
