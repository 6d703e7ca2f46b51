"""Building the Blender scene: import a product once, then restage it for each variant.

Only the worker process imports this module (it needs bpy). The stage is transparent: the backdrop
colour is composited afterwards so that the brand's hex comes out exact (see ``compose``).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from rendering.colour import hex_to_linear, shade
from rendering.framing import camera_basis, fit_distance
from rendering.profiles import RenderProfile
from rendering.templates import CAMERA_ANGLES, Template

STAGE = "autoplay_stage"
PRODUCT = "autoplay_product"


class ModelError(ValueError):
    """A product model that cannot be used; the message names the file and the reason."""


def reset() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def import_product(path: str | Path) -> list[bpy.types.Object]:
    """Import a GLB/glTF, OBJ or .blend into an empty scene, normalised to 1 unit tall on the floor."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    reset()
    suffix = path.suffix.lower()
    try:
        if suffix in (".glb", ".gltf"):
            result = bpy.ops.import_scene.gltf(filepath=str(path))
        elif suffix == ".obj":
            result = bpy.ops.wm.obj_import(filepath=str(path))
        elif suffix == ".blend":
            with bpy.data.libraries.load(str(path), link=False) as (src, dst):
                dst.objects = list(src.objects)
            for obj in dst.objects:
                if obj is not None:
                    bpy.context.scene.collection.objects.link(obj)
            result = {"FINISHED"}
        else:
            raise ModelError(f"{path}: unsupported model format {suffix!r} (use .glb, .gltf, .obj or .blend)")
    except RuntimeError as exc:
        raise ModelError(f"{path}: import failed: {str(exc).strip().splitlines()[-1]}") from None
    if "FINISHED" not in result:
        raise ModelError(f"{path}: import failed")

    for obj in list(bpy.context.scene.objects):
        if obj.type in ("LIGHT", "CAMERA"):
            bpy.data.objects.remove(obj, do_unlink=True)
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and len(o.data.vertices) > 0]
    if not meshes:
        raise ModelError(f"{path}: the model has no mesh geometry")
    _normalise(meshes, path)
    return meshes


def _world_corners(meshes: list[bpy.types.Object]) -> np.ndarray:
    bpy.context.view_layer.update()
    return np.array([tuple(o.matrix_world @ Vector(c)) for o in meshes for c in o.bound_box])


def _normalise(meshes: list[bpy.types.Object], path: Path) -> None:
    corners = _world_corners(meshes)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    size = hi - lo
    height = float(size.max())
    if not np.all(np.isfinite(size)) or height <= 1e-9:
        raise ModelError(f"{path}: the model has zero size")
    if height > 1e5:
        raise ModelError(f"{path}: absurd model size ({height:g} units across)")
    scale = 1.0 / float(size[2]) if size[2] > 1e-6 * height else 1.0 / height
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    transform = Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Translation(Vector(-centre))
    holder = bpy.data.objects.new(PRODUCT, None)
    bpy.context.scene.collection.objects.link(holder)
    for obj in [o for o in bpy.context.scene.objects if o.parent is None and o is not holder]:
        world = transform @ obj.matrix_world
        obj.parent = holder
        obj.matrix_parent_inverse = Matrix.Identity(4)
        obj.matrix_world = world
    bpy.context.view_layer.update()


def product_corners() -> np.ndarray:
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and not o.name.startswith(STAGE)]
    return _world_corners(meshes)


def _remove_stage() -> None:
    for obj in list(bpy.context.scene.objects):
        if obj.name.startswith(STAGE):
            bpy.data.objects.remove(obj, do_unlink=True)


def _material(name: str, hex_colour: str, roughness: float = 0.5) -> bpy.types.Material:
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (*hex_to_linear(hex_colour), 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    return mat


def _area_light(name: str, location: tuple, size: float, energy: float) -> None:
    light = bpy.data.lights.new(f"{STAGE}_{name}", type="AREA")
    light.size = size
    light.energy = energy
    obj = bpy.data.objects.new(f"{STAGE}_{name}", light)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = location
    direction = Vector((0, 0, 0.5)) - Vector(location)
    obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


LIGHT_RIGS: dict[str, list[tuple[str, tuple, float, float]]] = {
    # name, location (product is 1 unit tall at the origin), size, watts
    "softbox": [
        ("key", (-2.0, -2.4, 2.8), 1.6, 520.0),
        ("fill", (2.6, -1.8, 1.2), 2.5, 130.0),
        ("back", (0.8, 2.6, 2.4), 1.2, 260.0),
    ],
    "rim": [
        ("rim_l", (-2.4, 1.8, 1.6), 0.6, 520.0),
        ("rim_r", (2.4, 1.8, 1.6), 0.6, 520.0),
        ("key", (-1.2, -3.0, 2.2), 1.5, 240.0),
    ],
    "top": [("top", (0.0, -0.4, 3.4), 1.8, 650.0), ("fill", (0.0, -3.2, 0.8), 3.0, 90.0)],
}


def stage(template: Template, colour: str) -> None:
    """Ground, lights and world for a template; the product stays where import_product put it."""
    _remove_stage()
    scene = bpy.context.scene
    lift = 0.0
    if template.ground == "podium":
        lift = 0.14
        bpy.ops.mesh.primitive_cylinder_add(vertices=96, radius=0.5, depth=lift, location=(0, 0, lift / 2))
        podium = bpy.context.active_object
        podium.name = f"{STAGE}_podium"
        podium.data.materials.append(_material(f"{STAGE}_podium", shade(colour, 0.7), roughness=0.7))
        bpy.ops.object.shade_smooth()
    scene.objects[PRODUCT].location = (0.0, 0.0, lift)
    bpy.ops.mesh.primitive_plane_add(size=60, location=(0, 0, 0))
    floor = bpy.context.active_object
    floor.name = f"{STAGE}_floor"
    floor.is_shadow_catcher = True
    for name, location, size, energy in LIGHT_RIGS[template.lighting]:
        _area_light(name, location, size, energy)

    world = bpy.data.worlds.get(STAGE) or bpy.data.worlds.new(STAGE)
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.6, 0.6, 0.6, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.3
    scene.world = world
    bpy.context.view_layer.update()


def frame(template: Template, width: int, height: int) -> None:
    """Place a camera on the template's preset so the product fills its share of this frame."""
    scene = bpy.context.scene
    cam = scene.objects.get(f"{STAGE}_camera")
    if cam is None:
        cam = bpy.data.objects.new(f"{STAGE}_camera", bpy.data.cameras.new(f"{STAGE}_camera"))
        scene.collection.objects.link(cam)
    corners = product_corners()
    target = (corners.min(axis=0) + corners.max(axis=0)) / 2
    elevation, azimuth = CAMERA_ANGLES[template.camera]
    distance = fit_distance(corners, target, elevation, azimuth, template.lens_mm, width, height, template.fill)
    to_cam, _, _ = camera_basis(elevation, azimuth)
    cam.location = tuple(target + distance * to_cam)
    cam.rotation_euler = Vector(tuple(-to_cam)).to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = template.lens_mm
    cam.data.sensor_width = 36.0
    cam.data.sensor_fit = "HORIZONTAL" if width >= height else "VERTICAL"
    cam.data.sensor_height = 36.0
    cam.data.clip_start = distance / 100
    cam.data.clip_end = distance * 100
    scene.camera = cam


def configure(profile: RenderProfile, width: int, height: int, device: str = "CPU") -> None:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = device
    scene.cycles.samples = profile.samples
    scene.cycles.use_denoising = profile.denoise
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.max_bounces = 6
    scene.cycles.diffuse_bounces = 2
    scene.cycles.glossy_bounces = 2
    scene.cycles.transmission_bounces = 4
    scene.cycles.transparent_max_bounces = 4
    scene.cycles.caustics_reflective = False
    scene.cycles.caustics_refractive = False
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"


def render_to(path: Path) -> None:
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
