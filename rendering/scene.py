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

from creative.vocabulary import CAMERA_ANGLES, Template
from rendering.colour import ciede2000, hex_to_lab, hex_to_linear, neutral_preimage
from rendering.framing import SafeZone, camera_basis, horizon_from_top, place_camera, project
from rendering.model_check import (
    MAX_EXTENT,
    MIN_EXTENT,
    ModelError,
    check_bundle_sizes,
    check_model_file,
    resolve_slot,
)
from rendering.orientation import scene_orientation, upright_rotation
from rendering.profiles import RenderProfile
from rendering.staging import (
    FLOOR_REACH,
    FRONT_REACH,
    Shape,
    bundle_layout,
    camera_elevation,
    floor_spans,
    min_camera_height,
    podium_size,
)

STAGE = "autoplay_stage"
PRODUCT = "autoplay_product"


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
            if not block.get(STAGE):  # the stage's own HDRI stays: the world's light map is built from it
                data.remove(block)
    for coll in list(bpy.data.collections):
        bpy.data.collections.remove(coll)


def import_product(path: str | Path, orientation: str = "auto", colourway: dict[str, str] | None = None) -> dict:
    """Import a GLB/glTF, OBJ or .blend into an empty scene, normalised: upright, its largest side 1 unit,
    centred, resting on the floor. Materials and textures stay as they came. Returns what normalising did."""
    reset()
    path = check_model_file(path)
    meshes = _import_file(path)
    normalised = _normalise(meshes, path, orientation)
    if path.suffix.lower() == ".obj":
        normalised["specular_restored"] = _restore_specular(meshes)
    if colourway:
        apply_colourway(colourway, path)
    return normalised


def import_products(products: list) -> dict:
    """One product (a ``rendering.spec.Companion``): as ``import_product``. A bundle: each product stood up,
    recoloured and sized to its real height (``height_m``, else the size its file states: glTF and .blend
    are in metres, an OBJ carries no unit), set in a row without overlap (``staging.bundle_layout``), and
    the row normalised as one product. Returns what was done, per product under ``products``."""
    if len(products) == 1:
        p = products[0]
        return import_product(p.model_path, p.orientation, p.colourway)
    check_bundle_sizes([(p.model_path, p.height_m) for p in products])
    reset()
    parts, done = [], []
    for i, p in enumerate(products):
        path = check_model_file(p.model_path)
        meshes = _import_file(path)
        rotation, lo, hi = _upright(meshes, path, p.orientation)
        scale = p.height_m / float(hi[2] - lo[2]) if p.height_m else 1.0  # metres
        loose = [o for o in bpy.context.scene.objects if o.parent is None and not o.name.startswith(PRODUCT)]
        holder = _hold(f"{PRODUCT}_{i}", loose, rotation, lo, hi, scale)
        if path.suffix.lower() == ".obj":
            _restore_specular(meshes)
        if p.colourway:
            apply_colourway(p.colourway, path, materials={m for o in meshes for m in o.data.materials if m})
        parts.append(holder)
        size = (hi - lo) * scale
        done.append({"model": path.name, "size_m": [round(float(x), 4) for x in size], "scale": scale})
    for holder, x in zip(parts, bundle_layout([d["size_m"][0] for d in done])):
        holder.location.x = x
    bpy.context.view_layer.update()
    vertices = _world_vertices([o for o in bpy.context.scene.objects if o.type == "MESH"])
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    scale = 1.0 / float((hi - lo).max())
    _hold(PRODUCT, parts, np.eye(3), lo, hi, scale)
    return {"scale": scale, "original_size": [float(x) for x in (hi - lo)], "stood_up": True,
            "shape": Shape.of(vertices * scale).as_dict(),
            "products": done}  # fmt: skip


def _import_file(path: Path) -> list[bpy.types.Object]:
    """Import one model file beside what the scene holds; returns its meshes (its lights and cameras go)."""
    before = set(bpy.context.scene.objects)
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
    new = [o for o in bpy.context.scene.objects if o not in before]
    for obj in [o for o in new if o.type in ("LIGHT", "CAMERA")]:
        bpy.data.objects.remove(obj, do_unlink=True)
    meshes = [o for o in bpy.context.scene.objects if o not in before and o.type == "MESH" and len(o.data.vertices)]
    if not meshes:
        raise ModelError(f"{path}: the model has no mesh geometry")
    return meshes


def _restore_specular(meshes: list[bpy.types.Object]) -> list[str]:
    """An MTL without ``Ks`` imports as no specular at all, which no real surface has: such a glossy product
    renders as flat as felt. Those materials get the 4% reflectance of a common dielectric (Blender's 0.5)."""
    restored = []
    for mat in {m for obj in meshes for m in obj.data.materials if m is not None and m.use_nodes}:
        bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
        level = bsdf.inputs["Specular IOR Level"] if bsdf is not None else None
        if level is not None and not level.is_linked and level.default_value == 0.0:
            level.default_value = 0.5
            restored.append(mat.name)
    return sorted(restored)


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


def _upright(meshes: list[bpy.types.Object], path: Path, orientation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rotation that stands the model up, and its box once turned (low and high corners, file units)."""
    vertices = _world_vertices(meshes)
    if not np.all(np.isfinite(vertices)):
        raise ModelError(f"{path}: the model has non-finite vertex positions")
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    largest = float((hi - lo).max())
    if largest < MIN_EXTENT:
        raise ModelError(f"{path}: the model has zero size")
    if largest > MAX_EXTENT:
        raise ModelError(f"{path}: absurd model size ({largest:g} units across)")
    rotation = upright_rotation(vertices, scene_orientation(orientation, path.suffix))
    turned = vertices @ rotation.T
    return rotation, turned.min(axis=0), turned.max(axis=0)


def _hold(name: str, objects: list[bpy.types.Object], rotation: np.ndarray, lo, hi, scale: float) -> bpy.types.Object:
    """Parent ``objects`` to a new empty that turns them by ``rotation``, centres their box (``lo``, ``hi``,
    after turning) over the origin on the floor, and scales them by ``scale``."""
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    r4 = Matrix.Identity(4)
    for i in range(3):
        for j in range(3):
            r4[i][j] = float(rotation[i, j])
    transform = Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Translation(Vector(-centre)) @ r4
    holder = bpy.data.objects.new(name, None)
    holder["autoplay_scale"] = scale
    holder["autoplay_height"] = float(hi[2] - lo[2]) * scale
    bpy.context.scene.collection.objects.link(holder)
    for obj in objects:
        world = transform @ obj.matrix_world
        obj.parent = holder
        obj.matrix_parent_inverse = Matrix.Identity(4)
        obj.matrix_world = world
    bpy.context.view_layer.update()
    return holder


def _normalise(meshes: list[bpy.types.Object], path: Path, orientation: str) -> dict:
    rotation, lo, hi = _upright(meshes, path, orientation)
    scale = 1.0 / float((hi - lo).max())  # its largest side is 1 unit: the stage is built for that size
    _hold(PRODUCT, [o for o in bpy.context.scene.objects if o.parent is None], rotation, lo, hi, scale)
    return {
        "scale": scale,
        "original_size": [float(x) for x in (hi - lo)],
        "stood_up": not np.allclose(rotation, np.eye(3)),
        "shape": Shape.of(_world_vertices(meshes)).as_dict(),
    }


def apply_colourway(colourway: dict[str, str], path: Path | str = "model", materials: set | None = None) -> None:
    """Recolour the named material slots (exact names first; ``lambert1`` stands for a lone
    ``lambert1.001``); other slots stay. A textured slot is tinted, so its grain or weave stays: the texture
    brightness is multiplied by the swatch over its mean, so on average it is the swatch and its light and
    dark (a wood grain, a label) stay."""
    among = materials if materials is not None else [m for m in bpy.data.materials if m.users]
    materials = {m.name: m for m in among if not m.name.startswith(STAGE)}
    for slot, hex_colour in colourway.items():
        mat = materials[resolve_slot(slot, list(materials), path)]
        swatch = neutral_preimage(np.array(hex_to_linear(hex_colour)))
        bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None) if mat.use_nodes else None
        if bsdf is None:
            mat.diffuse_color = (*swatch, 1.0)
            continue
        base = bsdf.inputs["Base Color"]
        source = base.links[0].from_node if base.links else None
        if source is not None and source.type == "TEX_IMAGE" and source.image is not None:
            grey = mat.node_tree.nodes.new("ShaderNodeRGBToBW")
            mix = mat.node_tree.nodes.new("ShaderNodeMix")
            mix.data_type, mix.blend_type = "RGBA", "MULTIPLY"
            mix.inputs["Factor"].default_value = 1.0
            mat.node_tree.links.new(source.outputs["Color"], grey.inputs["Color"])
            mat.node_tree.links.new(grey.outputs["Val"], mix.inputs["A"])
            mix.inputs["B"].default_value = (*(swatch / _mean_brightness(source.image)), 1.0)
            mat.node_tree.links.new(mix.outputs["Result"], base)
            continue
        for link in list(base.links):
            mat.node_tree.links.remove(link)
        base.default_value = (*swatch, 1.0)


def _mean_brightness(image: bpy.types.Image) -> float:
    """Mean linear luminance of a texture (a strided sample of its pixels), never below 0.05."""
    pixels = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(pixels)
    rgb = pixels.reshape(-1, 4)[::7, :3]
    if not image.is_float and image.colorspace_settings.name == "sRGB":  # byte pixels read back encoded
        rgb = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return max(0.05, float((rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)).mean()))


def product_vertices() -> np.ndarray:
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and not o.name.startswith(STAGE)]
    return _world_vertices(meshes, limit=20_000)


def _stage_object(name: str, make) -> bpy.types.Object:
    """A stage object made once per loaded product and then only moved, resized and shown or hidden:
    creating objects costs Cycles a full scene sync (0.8 s a render at thumbnail size), changing them not."""
    obj = bpy.context.scene.objects.get(f"{STAGE}_{name}")
    if obj is None:
        obj = make()
        obj.name = f"{STAGE}_{name}"
    obj.hide_render = False
    return obj


def _mesh(op, **kwargs):
    def make() -> bpy.types.Object:
        op(**kwargs)
        return bpy.context.active_object

    return make


def _material(name: str, hex_colour: str, roughness: float = 0.5) -> bpy.types.Material:
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (*neutral_preimage(np.array(hex_to_linear(hex_colour))), 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    return mat


def _lights(rig: list[tuple[str, tuple, float, float, bool]], tint: tuple | None) -> None:
    """Set the stage's area lights to a rig, reusing the light objects; spare ones are hidden."""
    scene = bpy.context.scene
    for i in range(max(len(r) for r in LIGHT_RIGS.values())):
        obj = scene.objects.get(f"{STAGE}_light{i}")
        if obj is None:
            obj = bpy.data.objects.new(f"{STAGE}_light{i}", bpy.data.lights.new(f"{STAGE}_light{i}", type="AREA"))
            obj.visible_camera = False  # a softbox that drifts into a wide frame must not show
            scene.collection.objects.link(obj)
        obj.hide_render = i >= len(rig)
        if i >= len(rig):
            continue
        name, location, size, energy, shadow = rig[i]
        obj.data.size, obj.data.energy = size, energy
        obj.data.use_shadow = shadow  # one key casts the shadow; fills and rims casting their own would double it
        obj.data.color = tint if tint is not None and name.startswith("rim") else (1.0, 1.0, 1.0)
        obj.location = location
        obj.rotation_euler = (Vector((0, 0, 0.3)) - Vector(location)).to_track_quat("-Z", "Y").to_euler()


#: name, location (the product's largest side is 1 unit, at the origin), size, watts, casts the shadow.
#: The key stands high (45-60 degrees), so its soft shadow falls short and close; lights named rim*
#: take the accent colour.
LIGHT_RIGS: dict[str, list[tuple[str, tuple, float, float, bool]]] = {
    "softbox": [
        ("key", (-1.7, -2.0, 3.2), 2.2, 560.0, True),
        ("fill", (2.6, -1.8, 1.2), 2.5, 120.0, False),
        ("back", (0.8, 2.6, 2.4), 1.2, 200.0, False),
    ],
    "rim": [
        ("rim_l", (-2.4, 1.8, 1.6), 0.6, 420.0, False),
        ("rim_r", (2.4, 1.8, 1.6), 0.6, 420.0, False),
        ("key", (-1.2, -2.4, 3.0), 2.0, 300.0, True),
    ],
    "top": [("top", (0.0, -0.4, 3.4), 2.0, 650.0, True), ("fill", (0.0, -3.2, 0.8), 3.0, 90.0, False)],
    "window": [("window", (-3.0, -1.2, 2.8), 3.2, 900.0, True), ("bounce", (2.8, -2.2, 0.9), 2.5, 80.0, False)],
}

#: The CC0 studio HDRI that ships with bpy (datafiles/studiolights/world; licence beside it): it lights
#: the product from every side, so glossy products reflect a studio and the floor takes a contact shadow.
HDRI = "studio.exr"
HDRI_STRENGTH = 0.5
#: A lifestyle place lights the product itself; the template's rig only lifts it, at this share of its power.
LIFESTYLE_HDRI_STRENGTH = 1.0
LIFESTYLE_LIGHT_SHARE = 0.35
#: The view transform: Khronos PBR Neutral keeps base colours exact up to about 0.8 and rolls highlights
#: off instead of clipping them.
VIEW_TRANSFORM = "Khronos PBR Neutral"
#: The most of the safe zone a product may fill when its shape asks for more than the template's share.
MAX_FILL = 0.96


def _world(environment: str | None = None) -> bpy.types.World:
    """The studio world (its HDRI in grey: its light and reflections, not its colour cast) or a lifestyle
    scene's place in full colour, turned as the template says; each made once per worker."""
    name = f"{STAGE}_{environment}" if environment else STAGE
    world = bpy.data.worlds.get(name) or bpy.data.worlds.new(name)
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes["Background"]
    if "hdri" not in nodes:
        env = nodes.new("ShaderNodeTexEnvironment")
        env.name = "hdri"
        env.image = _hdri(f"{environment}.exr" if environment else HDRI)
        if environment:
            mapping = nodes.new("ShaderNodeMapping")
            mapping.name = "turn"
            links.new(nodes.new("ShaderNodeTexCoord").outputs["Generated"], mapping.inputs["Vector"])
            links.new(mapping.outputs["Vector"], env.inputs["Vector"])
            links.new(env.outputs["Color"], background.inputs["Color"])
            background.inputs["Strength"].default_value = LIFESTYLE_HDRI_STRENGTH
        else:
            grey = nodes.new("ShaderNodeHueSaturation")
            grey.inputs["Saturation"].default_value = 0.0
            links.new(env.outputs["Color"], grey.inputs["Color"])
            links.new(grey.outputs["Color"], background.inputs["Color"])
            background.inputs["Strength"].default_value = HDRI_STRENGTH
    return world


def _hdri(filename: str) -> bpy.types.Image:
    image = bpy.data.images.load(
        str(Path(bpy.utils.system_resource("DATAFILES")) / "studiolights" / "world" / filename), check_existing=True
    )
    image[STAGE] = True  # reset() keeps it: the world's light map is built from it
    return image


_ENVIRONMENT_PIXELS: dict[str, np.ndarray] = {}


def environment_pixels(environment: str) -> np.ndarray:
    """A lifestyle place's HDRI as scene-linear RGB, rows from the top (what ``environment.plate`` reads)."""
    if environment not in _ENVIRONMENT_PIXELS:
        image = _hdri(f"{environment}.exr")
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        _ENVIRONMENT_PIXELS[environment] = pixels.reshape(h, w, 4)[::-1, :, :3].copy()
    return _ENVIRONMENT_PIXELS[environment]


def stage(template: Template, podium_colour: str, accent: str | None) -> dict:
    """Ground, lights and world for a template, sized to the product; returns what was built."""
    scene = bpy.context.scene
    shape = Shape.of(product_vertices())
    lift, radius = 0.0, 0.0
    podium = _stage_object("podium", _mesh(bpy.ops.mesh.primitive_cylinder_add, vertices=128, radius=1, depth=1))
    if not podium.data.materials:
        podium.data.materials.append(_material(f"{STAGE}_podium", podium_colour, roughness=0.7))
        podium.data.polygons.foreach_set("use_smooth", [True] * len(podium.data.polygons))
    if template.ground == "podium":
        rx, ry, lift = podium_size(shape)
        radius = max(rx, ry)
        podium.scale, podium.location, podium.rotation_euler = (rx, ry, lift), (0, 0, lift / 2), (0, 0, 0)
        _material(f"{STAGE}_podium", podium_colour, roughness=0.7)
    else:
        podium.hide_render = True
    scene.objects[PRODUCT].location = (0.0, 0.0, lift)
    floor = _stage_object("floor", _mesh(bpy.ops.mesh.primitive_plane_add, size=2))
    floor.is_shadow_catcher = True
    mirror = _stage_object("floor_front", _mesh(bpy.ops.mesh.primitive_plane_add, size=2))
    mirror.visible_camera = mirror.visible_shadow = False
    rim_tint = tuple(0.5 + 0.5 * c for c in hex_to_linear(accent)) if accent else None
    share = LIFESTYLE_LIGHT_SHARE if template.environment else 1.0
    _lights([(n, loc, size, watts * share, shadow) for n, loc, size, watts, shadow in LIGHT_RIGS[template.lighting]],
            rim_tint)  # fmt: skip
    world = _world(template.environment)
    if template.environment:
        turn_node = world.node_tree.nodes["turn"].inputs["Rotation"]
        if abs(turn_node.default_value[2] - math.radians(template.environment_turn)) > 1e-6:
            turn_node.default_value[2] = math.radians(template.environment_turn)
    if scene.world != world:  # a world update rebuilds its light map: only when the place changes
        scene.world = world
    bpy.context.view_layer.update()
    return {"shape": shape.as_dict(), "ground_top": lift, "podium_radius": round(radius, 4)}


def frame(
    template: Template, width: int, height: int, zone: SafeZone, turntable: bool = False, fill_scale: float = 1.0
) -> dict:
    """Place a camera so the product fills its share of the safe zone, as its shape asks.

    The template's preset direction is the start: a flat product is seen from above, the camera never goes
    below the floor (or a wide product's top), the product spans at least half of the frame's limiting
    dimension, and a podium stays inside the frame. For a turntable the product is framed by the cylinder
    it sweeps, so no angle leaves the frame. Returns where the product and the horizon land in the image.
    """
    scene = bpy.context.scene
    cam = scene.objects.get(f"{STAGE}_camera")
    if cam is None:
        cam = bpy.data.objects.new(f"{STAGE}_camera", bpy.data.cameras.new(f"{STAGE}_camera"))
        scene.collection.objects.link(cam)
    points = product_vertices()
    shape = Shape.of(points)
    portrait = height > width
    if not turntable and shape.kind == "flat" and portrait and shape.width > 1.3 * shape.depth:
        turn(90.0)  # a watch or a bag in a tall frame: its long side runs up the picture, on its plinth too
        scene.objects[f"{STAGE}_podium"].rotation_euler = (0, 0, math.pi / 2)
        bpy.context.view_layer.update()
        points = product_vertices()
    if turntable:
        radius = float(np.hypot(points[:, 0], points[:, 1]).max())
        ring = [(radius * math.cos(a), radius * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
        z0, z1 = points[:, 2].min(), points[:, 2].max()
        points = np.array([(x, y, z) for x, y in ring for z in (z0, z1)])
    ground = float(points[:, 2].min())
    podium = scene.objects.get(f"{STAGE}_podium")
    rim = None
    if podium is not None and not podium.hide_render:
        m = np.array(podium.matrix_world)
        angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        unit = np.array([(math.cos(a), math.sin(a), z, 1.0) for a in angles for z in (-0.5, 0.5)])
        rim = (unit @ m.T)[:, :3]  # the podium's top and bottom edges, as scaled and turned
    preset, azimuth = CAMERA_ANGLES[template.camera]
    placed = place_camera(
        points,
        camera_elevation(preset, template.camera, shape, portrait),
        azimuth,
        template.lens_mm,
        width,
        height,
        min(MAX_FILL, template.fill * fill_scale),
        zone,
        min_camera_z=min_camera_height(ground, shape),
        stage_points=rim,
        min_share=0.5,
        max_fill=MAX_FILL,
    )
    elevation, distance, camera = placed.elevation, placed.distance, placed.camera
    to_cam, _, _ = camera_basis(elevation, azimuth)
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
    edge = float(points[:, 1].min()) if rim is None else min(float(points[:, 1].min()), float(rim[:, 1].min()))
    reach = None if template.environment else FRONT_REACH  # a place's sun may stand behind: its shadow comes forward
    _fit_floor(scene.objects[f"{STAGE}_floor"], scene.objects[f"{STAGE}_floor_front"], edge, reach)

    xy = project(points, camera, elevation, azimuth, template.lens_mm, width, height, zone)
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    return {
        "product_box": [round((x0 + 1) / 2, 4), round((1 - y1) / 2, 4), round((x1 + 1) / 2, 4), round((1 - y0) / 2, 4)],
        "horizon": round(horizon_from_top(elevation, template.lens_mm, width, height, zone), 4),
        "camera_distance": round(distance, 4),
        "elevation": round(elevation, 2),
        "azimuth": azimuth,
        "fill_used": round(placed.fill, 4),
        "camera_height": round(float(camera[2]), 4),
        "camera_above_floor": bool(camera[2] > ground),
    }


def _fit_floor(floor: bpy.types.Object, unseen: bpy.types.Object, front_edge: float, reach: float | None) -> None:
    """The shadow catcher over its span (``staging.floor_spans``), and the floor in front of it as ``unseen``: the
    same plain floor to reflections and bounce light, hidden from the camera, so a glossy product reflects what
    it did."""
    (y0, y1), rest = floor_spans(front_edge, reach)
    floor.scale, floor.location = (FLOOR_REACH, (y1 - y0) / 2, 1.0), (0.0, (y0 + y1) / 2, 0.0)
    unseen.hide_render = rest is None
    if rest is not None:
        unseen.scale, unseen.location = (FLOOR_REACH, (rest[1] - rest[0]) / 2, 1.0), (0.0, sum(rest) / 2, 0.0)


def turn(angle_deg: float) -> None:
    """Turn the product about its vertical axis (turntables)."""
    bpy.context.scene.objects[PRODUCT].rotation_euler = (0.0, 0.0, math.radians(angle_deg))


def configure(profile: RenderProfile, width: int, height: int, device: str = "CPU", exposure: float = 0.0) -> None:
    """Render settings for a profile and size. Only values that differ are written: Cycles resets its whole
    session (1.2 s at thumbnail size) on any write to them, even of the same value."""
    scene = bpy.context.scene
    c, r, v = scene.cycles, scene.render, scene.view_settings
    _update(r, engine="CYCLES", use_persistent_data=True, resolution_x=width, resolution_y=height)
    _update(r, resolution_percentage=100, film_transparent=True)
    _update(
        c,
        device="CPU" if device == "CPU" else "GPU",
        samples=profile.samples,
        use_denoising=profile.denoise,
        denoiser="OPENIMAGEDENOISE",  # on the CPU here; OIDN runs on the GPUs it supports too
        denoising_quality=profile.denoise_quality,
        denoising_input_passes="RGB_ALBEDO_NORMAL",
        denoising_prefilter="FAST",  # ACCURATE denoises the albedo and normal passes too: 2 s more at preview
        use_adaptive_sampling=True,
        use_light_tree=False,  # a handful of area lights: the tree costs more than it saves
        max_bounces=4,
        diffuse_bounces=1,
        glossy_bounces=2,
        transmission_bounces=4,
        transparent_max_bounces=4,
        caustics_reflective=False,
        caustics_refractive=False,
    )
    _update(v, view_transform=VIEW_TRANSFORM, look="None", exposure=exposure, gamma=1.0)
    _png(scene)


def _update(owner, **values) -> None:
    for name, value in values.items():
        current = getattr(owner, name)
        if current != value and not (isinstance(value, float) and abs(current - value) < 1e-6):
            setattr(owner, name, value)


def set_exposure(exposure: float) -> None:
    _update(bpy.context.scene.view_settings, exposure=exposure)


def _png(scene) -> None:
    # the raw frame is composited and deleted: skip zlib
    _update(scene.render.image_settings, file_format="PNG", color_mode="RGBA", color_depth="8", compression=0)


def render_to(path: Path) -> None:
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


class _Saved:
    """Render settings, camera and visibility changed for a side render, put back afterwards."""

    def __init__(self, scene, objects) -> None:
        self.scene, self.objects = scene, list(objects)
        c, r = scene.cycles, scene.render
        self.values = (c.samples, c.use_denoising, c.use_adaptive_sampling, r.resolution_x, r.resolution_y,
                       scene.view_settings.view_transform, scene.view_settings.exposure, scene.camera)  # fmt: skip
        self.hidden = [(o, o.hide_render, o.is_holdout) for o in self.objects]

    def restore(self) -> None:
        c, r, v = self.scene.cycles, self.scene.render, self.scene.view_settings
        samples, denoise, adaptive, x, y, transform, exposure, camera = self.values
        _update(c, samples=samples, use_denoising=denoise, use_adaptive_sampling=adaptive)
        _update(r, resolution_x=x, resolution_y=y)
        _update(v, view_transform=transform, exposure=exposure)
        self.scene.camera = camera
        for obj, hide, holdout in self.hidden:
            obj.hide_render, obj.is_holdout = hide, holdout
        bpy.context.view_layer.material_override = None
        _png(self.scene)


def render_masks(folder: Path, unoccluded: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The product's visible coverage (0..1 per pixel) with the podium as a holdout, and, on a podium and
    when asked, its coverage with the podium gone (how much the podium hides). Flat white emission at 4
    samples: a few milliseconds, cheap enough to frame by."""
    scene = bpy.context.scene
    stage_objects = _visible_stage(scene)
    saved = _Saved(scene, stage_objects)
    try:
        podium = _mask_setup(scene, stage_objects)
        masks = [_mask(folder)]
        if podium is not None and unoccluded:
            podium.hide_render = True
            masks.append(_mask(folder))
    finally:
        saved.restore()
    return masks[0], masks[1] if len(masks) > 1 else None


def bundle_masks(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each product of a bundle, in order: its visible coverage with the others in front of it, and its
    coverage with the others gone (how much they hide of it); the podium is a holdout in both. Empty for a
    single product."""
    scene = bpy.context.scene
    parts = sorted((o for o in scene.objects if o.name.startswith(f"{PRODUCT}_")), key=lambda o: o.name)
    meshes = [[c for c in p.children_recursive if c.type == "MESH"] for p in parts]
    stage_objects = _visible_stage(scene)
    saved = _Saved(scene, [*stage_objects, *(m for ms in meshes for m in ms)])
    out = []
    try:
        _mask_setup(scene, stage_objects)
        for i in range(len(parts)):
            others = [m for j, ms in enumerate(meshes) if j != i for m in ms]
            for obj in others:
                obj.is_holdout = True
            visible = _mask(folder)
            for obj in others:
                obj.hide_render = True
            out.append((visible, _mask(folder)))
            for obj in others:
                obj.hide_render, obj.is_holdout = False, False
    finally:
        saved.restore()
    return out


def _visible_stage(scene) -> list[bpy.types.Object]:
    return [o for o in scene.objects if o.name.startswith(STAGE) and o.type == "MESH" and not o.hide_render]


def _mask_setup(scene, stage_objects: list[bpy.types.Object]) -> bpy.types.Object | None:
    """Silhouette renders: 4 samples of flat white emission, the podium a holdout, the rest of the stage
    hidden; returns the podium when there is one."""
    scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.use_adaptive_sampling = 4, False, False
    scene.view_settings.view_transform, scene.view_settings.exposure = "Standard", 0.0
    bpy.context.view_layer.material_override = _emission()
    podium = None
    for obj in stage_objects:
        if obj.name == f"{STAGE}_podium":
            obj.is_holdout, podium = True, obj
        else:
            obj.hide_render = True
    return podium


def _mask(folder: Path) -> np.ndarray:
    """Render the silhouette as it is set up: coverage 0..1 per pixel."""
    from PIL import Image

    render_to(folder / "mask.png")
    with Image.open(folder / "mask.png") as im:
        mask = np.asarray(im.convert("RGBA"))[..., 3].astype(np.float32) / 255.0
    (folder / "mask.png").unlink()
    return mask


def _emission() -> bpy.types.Material:
    mat = bpy.data.materials.get(f"{STAGE}_mask") or bpy.data.materials.new(f"{STAGE}_mask")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    if "Emission" not in nodes:
        nodes.clear()
        emission, out = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial")
        emission.name = "Emission"
        mat.node_tree.links.new(emission.outputs["Emission"], out.inputs["Surface"])
    return mat


#: Exposure per (lighting rig, patch height): the rigs do not change while a worker lives.
_EXPOSURES: dict[tuple, float] = {}
_DELTA_E: dict[tuple, float] = {}
CALIBRATION_ALBEDO = 0.5


def calibrate(template: Template, swatches: dict[str, str], folder: Path) -> tuple[float, dict[str, float]]:
    """The exposure that renders a diffuse patch facing the key light at its own albedo, and, under that
    exposure, each swatch's CIEDE2000 from its hex on such a patch: what a colourway looks like in this light.

    The patch sits where the product's centre is, with the product and stage hidden; 8x8 pixels at 32 samples.
    """
    from PIL import Image

    scene = bpy.context.scene
    centre_z = float(product_vertices()[:, 2].mean()) + float(scene.objects[PRODUCT].location.z)
    key = (template.lighting, template.environment, round(centre_z, 1))
    todo = sorted({h for h in swatches.values() if (key, h) not in _DELTA_E})
    if key in _EXPOSURES and not todo:  # nothing to measure: leave the scene (and its BVH) untouched
        return _EXPOSURES[key], {slot: _DELTA_E[key, h] for slot, h in swatches.items()}
    key_name, key_location = next((n, loc) for n, loc, *_, shadow in LIGHT_RIGS[template.lighting] if shadow)
    others = [o for o in scene.objects if o.type == "MESH" and not o.name.startswith(f"{STAGE}_patch")]
    saved = _Saved(scene, [*others, *([scene.objects[f"{STAGE}_patch"]] if f"{STAGE}_patch" in scene.objects else [])])
    patch = None
    try:
        for obj in others:
            obj.hide_render = True
        patch = _stage_object("patch", _mesh(bpy.ops.mesh.primitive_plane_add, size=0.05))
        patch.location = (0, 0, centre_z)
        normal = (Vector(key_location) - Vector((0, 0, centre_z))).normalized()
        patch.rotation_euler = normal.to_track_quat("Z", "Y").to_euler()
        mat = _material(f"{STAGE}_patch", "#808080", roughness=1.0)
        mat.node_tree.nodes["Principled BSDF"].inputs["Specular IOR Level"].default_value = 0.0
        if not patch.data.materials:
            patch.data.materials.append(mat)
        probe = bpy.data.objects.get(f"{STAGE}_probe") or bpy.data.objects.new(
            f"{STAGE}_probe", bpy.data.cameras.new(f"{STAGE}_probe")
        )
        if probe.name not in scene.collection.objects:
            scene.collection.objects.link(probe)
        probe.data.type, probe.data.ortho_scale = "ORTHO", 0.02
        probe.location = Vector((0, 0, centre_z)) + normal * 0.5
        probe.rotation_euler = (-normal).to_track_quat("-Z", "Y").to_euler()
        scene.camera = probe
        scene.render.resolution_x = scene.render.resolution_y = 8
        scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.use_adaptive_sampling = 32, False, False
        bsdf = mat.node_tree.nodes["Principled BSDF"]

        def patch_rgb8(linear: tuple) -> np.ndarray:
            bsdf.inputs["Base Color"].default_value = (*linear, 1.0)
            render_to(folder / "patch.png")
            with Image.open(folder / "patch.png") as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.float64)[2:6, 2:6].reshape(-1, 3).mean(axis=0)
            (folder / "patch.png").unlink()
            return rgb

        if key not in _EXPOSURES:
            # measured 4 stops down, so a bright rig does not clip the patch
            scene.view_settings.view_transform, scene.view_settings.exposure = "Standard", -4.0
            grey = patch_rgb8((CALIBRATION_ALBEDO,) * 3)[1] / 255.0
            measured = 16 * (grey / 12.92 if grey <= 0.04045 else ((grey + 0.055) / 1.055) ** 2.4)
            _EXPOSURES[key] = float(np.clip(math.log2(CALIBRATION_ALBEDO / max(measured, 1e-4)), -10, 10))
        exposure = _EXPOSURES[key]
        scene.view_settings.view_transform, scene.view_settings.exposure = VIEW_TRANSFORM, exposure
        for hex_colour in todo:
            r, g, b = patch_rgb8(tuple(neutral_preimage(np.array(hex_to_linear(hex_colour)))))
            seen = f"#{round(r):02X}{round(g):02X}{round(b):02X}"
            _DELTA_E[key, hex_colour] = round(ciede2000(hex_to_lab(seen), hex_to_lab(hex_colour)), 2)
    finally:
        saved.restore()
        if patch is not None:
            patch.hide_render = True
    return exposure, {slot: _DELTA_E[key, h] for slot, h in swatches.items()}


def export_web_model(glb: Path, usdz: Path, height_m: float | None = None) -> dict:
    """Export the loaded product, upright, as GLB (the web viewer) and USDZ (iOS AR Quick Look), both Y-up in
    metres: ``height_m`` tall when given, else at the size its file states (glTF is in metres; OBJ carries no
    unit). Call after ``import_product``, before any staging: only the product's own objects go into the
    files, and the scene is left unfit for rendering (call it in a process of its own). Returns its size and
    triangle count."""
    holder = bpy.context.scene.objects[PRODUCT]
    scale = holder.get("autoplay_scale", 1.0)
    height = holder.get("autoplay_height", 1.0) / scale  # in the file's units
    factor = (height_m / height if height_m else 1.0) / scale  # undo the stage's unit size, then the brief's
    holder.matrix_world = Matrix.Diagonal((factor, factor, factor, 1.0))
    bpy.context.view_layer.update()
    meshes = [o for o in holder.children_recursive if o.type == "MESH"]
    bpy.ops.object.select_all(action="DESELECT")
    for obj in meshes:  # baked into the vertices: viewers and AR read one plain mesh per part, no node scales
        world = obj.matrix_world.copy()
        obj.parent = None
        if obj.data.users > 1:
            obj.data = obj.data.copy()
        obj.data.transform(world)
        obj.matrix_world = Matrix.Identity(4)
        obj.select_set(True)
    bpy.context.view_layer.update()
    vertices = _world_vertices(meshes)
    triangles = sum(sum(len(p.vertices) - 2 for p in o.data.polygons) for o in meshes)
    bpy.ops.export_scene.gltf(filepath=str(glb), export_format="GLB", use_selection=True, export_yup=True)
    bpy.ops.wm.usd_export(
        filepath=str(usdz),
        selected_objects_only=True,
        convert_orientation=True,
        export_global_up_selection="Y",
        export_global_forward_selection="NEGATIVE_Z",
    )
    return {
        "size_m": [round(float(x), 6) for x in vertices.max(axis=0) - vertices.min(axis=0)],
        "triangles": int(triangles),
    }
