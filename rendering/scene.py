"""Building the Blender scene: import a product once, then restage it for each variant.

Only the worker process imports this module (it needs bpy). The stage is transparent: the backdrop
colour is composited afterwards so that the brand's hex comes out exact (see ``compose``).
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from rendering.colour import hex_to_linear
from rendering.framing import SafeZone, camera_basis, fit_distance, horizon_from_top, project
from rendering.model_check import ModelError, check_model_file
from rendering.orientation import upright_rotation
from rendering.profiles import RenderProfile
from rendering.templates import CAMERA_ANGLES, Template

STAGE = "autoplay_stage"
PRODUCT = "autoplay_product"
MAX_EXTENT_M = 1e4  # a product 10 km across is a unit mistake, not a product
MIN_EXTENT_M = 1e-5
PODIUM_HEIGHT = 0.14


def reset() -> None:
    """Empty the scene and drop its data, keeping preferences (the GPU device chosen at start)."""
    for data in (
        bpy.data.objects,
        bpy.data.meshes,
        bpy.data.materials,
        bpy.data.images,
        bpy.data.lights,
        bpy.data.cameras,
        bpy.data.node_groups,
        bpy.data.textures,
        bpy.data.actions,
    ):
        for block in list(data):
            data.remove(block)
    for coll in list(bpy.data.collections):
        bpy.data.collections.remove(coll)


def import_product(path: str | Path, orientation: str = "auto", colourway: dict[str, str] | None = None) -> dict:
    """Import a GLB/glTF, OBJ or .blend into an empty scene, normalised: upright, 1 unit tall, centred,
    resting on the floor. Materials and textures stay as they came. Returns what normalising did."""
    path = check_model_file(path)
    reset()
    suffix = path.suffix.lower()
    try:
        if suffix in (".glb", ".gltf"):
            result = bpy.ops.import_scene.gltf(filepath=str(path))
        elif suffix == ".obj":
            result = bpy.ops.wm.obj_import(filepath=str(path))
        else:
            with bpy.data.libraries.load(str(path), link=False) as (src, dst):
                dst.objects = list(src.objects)
            for obj in dst.objects:
                if obj is not None:
                    bpy.context.scene.collection.objects.link(obj)
            result = {"FINISHED"}
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
    normalised = _normalise(meshes, path, orientation)
    if colourway:
        apply_colourway(colourway, path)
    return normalised


def _world_vertices(meshes: list[bpy.types.Object], limit: int = 200_000) -> np.ndarray:
    bpy.context.view_layer.update()
    chunks = []
    for obj in meshes:
        co = np.empty(len(obj.data.vertices) * 3, dtype=np.float64)
        obj.data.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
        if len(co) > limit:
            co = co[:: len(co) // limit + 1]
        m = np.array(obj.matrix_world)
        chunks.append(co @ m[:3, :3].T + m[:3, 3])
    return np.concatenate(chunks)


def _normalise(meshes: list[bpy.types.Object], path: Path, orientation: str) -> dict:
    vertices = _world_vertices(meshes)
    if not np.all(np.isfinite(vertices)):
        raise ModelError(f"{path}: the model has non-finite vertex positions")
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    largest = float((hi - lo).max())
    if largest < MIN_EXTENT_M:
        raise ModelError(f"{path}: the model has zero size")
    if largest > MAX_EXTENT_M:
        raise ModelError(f"{path}: absurd model size ({largest:g} units across)")
    rotation = upright_rotation(vertices, orientation)
    turned = vertices @ rotation.T
    lo, hi = turned.min(axis=0), turned.max(axis=0)
    height = float(hi[2] - lo[2])
    scale = 1.0 / height if height > 1e-3 * largest else 1.0 / largest  # a flat product: its largest side is 1
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    r4 = Matrix.Identity(4)
    for i in range(3):
        for j in range(3):
            r4[i][j] = float(rotation[i, j])
    transform = Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Translation(Vector(-centre)) @ r4
    holder = bpy.data.objects.new(PRODUCT, None)
    bpy.context.scene.collection.objects.link(holder)
    for obj in [o for o in bpy.context.scene.objects if o.parent is None and o is not holder]:
        world = transform @ obj.matrix_world
        obj.parent = holder
        obj.matrix_parent_inverse = Matrix.Identity(4)
        obj.matrix_world = world
    bpy.context.view_layer.update()
    return {
        "scale": scale,
        "original_size": [float(x) for x in (hi - lo)],
        "stood_up": not np.allclose(rotation, np.eye(3)),
    }


def apply_colourway(colourway: dict[str, str], path: Path | str = "model") -> None:
    """Recolour the named material slots (``lambert1`` matches ``lambert1.001``); other slots stay."""
    materials = {m.name: m for m in bpy.data.materials if m.users and not m.name.startswith(STAGE)}
    for slot, hex_colour in colourway.items():
        matched = [m for name, m in materials.items() if name == slot or name.rsplit(".", 1)[0] == slot]
        if not matched:
            raise ModelError(f"{path}: colourway names material slot {slot!r}; the model has {sorted(materials)}")
        for mat in matched:
            bsdf = (
                next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None) if mat.use_nodes else None
            )
            if bsdf is None:
                mat.diffuse_color = (*hex_to_linear(hex_colour), 1.0)
                continue
            base = bsdf.inputs["Base Color"]
            for link in list(base.links):
                mat.node_tree.links.remove(link)
            base.default_value = (*hex_to_linear(hex_colour), 1.0)


def product_vertices() -> np.ndarray:
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and not o.name.startswith(STAGE)]
    return _world_vertices(meshes, limit=20_000)


def _remove_stage() -> None:
    for obj in list(bpy.context.scene.objects):
        if obj.name.startswith(STAGE) and obj.type != "CAMERA":
            bpy.data.objects.remove(obj, do_unlink=True)


def _material(name: str, hex_colour: str, roughness: float = 0.5) -> bpy.types.Material:
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (*hex_to_linear(hex_colour), 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    return mat


def _area_light(name: str, location: tuple, size: float, energy: float, tint: tuple | None) -> None:
    light = bpy.data.lights.new(f"{STAGE}_{name}", type="AREA")
    light.size = size
    light.energy = energy
    if tint is not None:
        light.color = tint
    if name.startswith("rim"):
        light.use_shadow = False  # rims sit behind the product: their shadows would streak towards the camera
    obj = bpy.data.objects.new(f"{STAGE}_{name}", light)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = location
    direction = Vector((0, 0, 0.5)) - Vector(location)
    obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


LIGHT_RIGS: dict[str, list[tuple[str, tuple, float, float]]] = {
    # name, location (product is 1 unit tall at the origin), size, watts. Lights named rim* take the accent.
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
    "window": [("window", (-3.4, -1.2, 1.9), 3.2, 900.0), ("bounce", (2.8, -2.2, 0.9), 2.5, 80.0)],
}


def stage(template: Template, podium_colour: str, accent: str | None) -> None:
    """Ground, lights and world for a template; the product stays where import_product put it."""
    _remove_stage()
    scene = bpy.context.scene
    lift = 0.0
    if template.ground == "podium":
        lift = PODIUM_HEIGHT
        radius = max(0.5, float(np.abs(product_vertices()[:, :2]).max()) * 1.5)
        bpy.ops.mesh.primitive_cylinder_add(vertices=96, radius=radius, depth=lift, location=(0, 0, lift / 2))
        podium = bpy.context.active_object
        podium.name = f"{STAGE}_podium"
        podium.data.materials.append(_material(f"{STAGE}_podium", podium_colour, roughness=0.7))
        bpy.ops.object.shade_smooth()
    scene.objects[PRODUCT].location = (0.0, 0.0, lift)
    # Shadows fall within a few units of a 1-unit product; rays that miss a small catcher cost nothing.
    bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, 0))
    floor = bpy.context.active_object
    floor.name = f"{STAGE}_floor"
    floor.is_shadow_catcher = True
    rim_tint = tuple(0.5 + 0.5 * c for c in hex_to_linear(accent)) if accent else None
    for name, location, size, energy in LIGHT_RIGS[template.lighting]:
        _area_light(name, location, size, energy, rim_tint if name.startswith("rim") else None)

    world = bpy.data.worlds.get(STAGE) or bpy.data.worlds.new(STAGE)
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.6, 0.6, 0.6, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.3
    scene.world = world
    bpy.context.view_layer.update()


def frame(template: Template, width: int, height: int, zone: SafeZone, turntable: bool = False) -> dict:
    """Place a camera on the template's preset so the product fills its share of the safe zone.

    For a turntable the product is framed by the cylinder it sweeps, so no angle leaves the frame.
    Returns where the product and the horizon land in the image (shares from the top left).
    """
    scene = bpy.context.scene
    cam = scene.objects.get(f"{STAGE}_camera")
    if cam is None:
        cam = bpy.data.objects.new(f"{STAGE}_camera", bpy.data.cameras.new(f"{STAGE}_camera"))
        scene.collection.objects.link(cam)
    points = product_vertices()
    if turntable:
        radius = float(np.hypot(points[:, 0], points[:, 1]).max())
        ring = [(radius * math.cos(a), radius * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
        z0, z1 = points[:, 2].min(), points[:, 2].max()
        points = np.array([(x, y, z) for x, y in ring for z in (z0, z1)])
    target = (points.min(axis=0) + points.max(axis=0)) / 2
    elevation, azimuth = CAMERA_ANGLES[template.camera]
    distance = fit_distance(points, target, elevation, azimuth, template.lens_mm, width, height, template.fill, zone)
    to_cam, _, _ = camera_basis(elevation, azimuth)
    camera = target + distance * to_cam
    cam.location = tuple(camera)
    cam.rotation_euler = Vector(tuple(-to_cam)).to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = template.lens_mm
    cam.data.sensor_width = 36.0
    cam.data.sensor_height = 36.0
    cam.data.sensor_fit = "HORIZONTAL" if width >= height else "VERTICAL"
    cam.data.shift_x, cam.data.shift_y = zone.lens_shift(width, height)
    cam.data.clip_start = distance / 100
    cam.data.clip_end = distance * 100
    scene.camera = cam

    xy = project(points, camera, elevation, azimuth, template.lens_mm, width, height, zone)
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    return {
        "product_box": [round((x0 + 1) / 2, 4), round((1 - y1) / 2, 4), round((x1 + 1) / 2, 4), round((1 - y0) / 2, 4)],
        "horizon": round(horizon_from_top(elevation, template.lens_mm, width, height, zone), 4),
        "camera_distance": round(distance, 4),
    }


def turn(angle_deg: float) -> None:
    """Turn the product about its vertical axis (turntables)."""
    bpy.context.scene.objects[PRODUCT].rotation_euler = (0.0, 0.0, math.radians(angle_deg))


def configure(profile: RenderProfile, width: int, height: int, device: str = "CPU") -> None:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU" if device == "CPU" else "GPU"
    scene.cycles.samples = profile.samples
    scene.cycles.use_denoising = profile.denoise
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.use_light_tree = False  # a handful of area lights: the tree costs more than it saves
    scene.cycles.max_bounces = 4
    scene.cycles.diffuse_bounces = 1
    scene.cycles.glossy_bounces = 2
    scene.cycles.transmission_bounces = 4
    scene.cycles.transparent_max_bounces = 4
    scene.cycles.caustics_reflective = False
    scene.cycles.caustics_refractive = False
    scene.render.use_persistent_data = True  # keep the BVH and shaders between variants of a loaded scene
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
    scene.render.image_settings.compression = 0  # the raw frame is composited and deleted: skip zlib


def render_to(path: Path) -> None:
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
