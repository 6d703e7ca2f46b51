"""Shape-aware staging, camera placement, render QA and the pre-render checks: pure code, no Blender."""

import json
import math
import struct

import numpy as np
import pytest

from rendering.framing import box_share, place_camera, project
from rendering.model_check import ModelError, check_render_inputs, resolve_slot
from rendering.orientation import upright_rotation
from rendering.profiles import safe_zone
from rendering.qa import Thresholds, check_render
from rendering.staging import (
    FLOOR_REACH,
    PODIUM_MARGIN,
    Shape,
    camera_elevation,
    floor_spans,
    min_camera_height,
    podium_size,
)
from tests.rendering.corpus import CORPUS, low_poly_can, write_corpus


def box_points(w, d, h, z0=0.0):
    return np.array([[x, y, z] for x in (-w / 2, w / 2) for y in (-d / 2, d / 2) for z in (z0, z0 + h)])


@pytest.mark.parametrize(
    "size, kind",
    [((1.0, 0.17, 0.04), "flat"), ((1.0, 0.45, 0.38), "wide"), ((0.3, 0.3, 1.0), "tall"), ((1.0, 0.5, 0.54), "wide")],
)
def test_shapes_are_told_apart_by_height_over_footprint(size, kind):
    assert Shape(*size).kind == kind


def test_flat_products_are_seen_from_above_and_wide_ones_never_edge_on():
    watch, desk, bottle = Shape(1.0, 0.17, 0.04), Shape(1.0, 0.5, 0.54), Shape(0.3, 0.3, 1.0)
    assert camera_elevation(4.0, "front", watch) >= 30
    assert camera_elevation(45.0, "top_down", watch) >= 60
    assert camera_elevation(18.0, "three_quarter", watch, portrait=True) >= 60
    assert camera_elevation(4.0, "front", desk) >= 14
    assert camera_elevation(4.0, "front", bottle) == 4.0 and camera_elevation(-6.0, "low_angle", bottle) == -6.0


FOOTPRINTS = [(1.0, 0.17, 0.04), (0.78, 1.0, 0.2), (0.3, 0.3, 1.0), (1.0, 0.43, 0.38), (1, 1, 0.6), (1.0, 0.625, 0.075)]


@pytest.mark.parametrize("size", FOOTPRINTS)
def test_the_podium_holds_every_corner_of_the_footprint_with_room_to_spare(size):
    shape = Shape(*size)
    rx, ry, height = podium_size(shape)
    for x, y in [(shape.width / 2, shape.depth / 2), (shape.width / 2, 0), (0, shape.depth / 2)]:
        assert (x / rx) ** 2 + (y / ry) ** 2 <= 1 / PODIUM_MARGIN**2 + 1e-9  # the corners never on the rim
    assert max(rx, ry) <= 0.7 * math.hypot(shape.width, shape.depth) + 1e-9, "just larger than the product"
    assert 0.05 <= height <= 0.12


@pytest.mark.parametrize("size", [s for s in FOOTPRINTS if max(s[:2]) >= 1.5 * min(s[:2])])
def test_a_long_footprints_plinth_runs_the_same_way_as_the_product(size):
    """A 40 x 25 cm tray once stood on a plinth deeper than it was wide, its corners on the rim."""
    rx, ry, _ = podium_size(Shape(*size))
    assert (rx > ry) == (size[0] > size[1])


@pytest.mark.parametrize("front_edge", [-0.05, -0.5, -1.2])
def test_a_studio_catcher_stops_just_in_front_of_the_product_and_the_floor_goes_on_unseen(front_edge):
    (near, far), unseen = floor_spans(front_edge, 0.25)
    assert far == FLOOR_REACH and near == pytest.approx(front_edge - 0.25)  # behind: every shadow the keys cast
    assert unseen == (-FLOOR_REACH, near)  # the rest of the floor, reflected as before: no gap, no overlap


def test_a_lifestyle_catcher_reaches_as_far_forward_as_back_and_never_past_the_floor():
    assert floor_spans(-0.3, None) == ((-FLOOR_REACH, FLOOR_REACH), None)  # a place's sun may stand behind
    assert floor_spans(-2.9, 0.25) == ((-FLOOR_REACH, FLOOR_REACH), None)  # a podium wider than the floor's reach


def test_the_hero_camera_is_raised_above_the_floor_for_any_product():
    for w, d, h in [(0.3, 0.3, 1.0), (1.0, 0.43, 0.38), (1.0, 0.17, 0.04)]:
        points, shape = box_points(w, d, h), Shape(w, d, h)
        placed = place_camera(
            points, camera_elevation(-6.0, "low_angle", shape), 20.0, 65.0, 1080, 1080, 0.62, safe_zone("1:1"),
            min_camera_z=min_camera_height(0.0, shape),
        )  # fmt: skip
        assert placed.camera[2] > 0.0
        if shape.kind != "tall":
            assert placed.camera[2] >= h, "a wide product is seen from above its top"


@pytest.mark.parametrize("aspect, size", [("9:16", (1.0, 0.43, 0.38)), ("16:9", (0.2, 0.2, 1.0)), ("1:1", (1, 1, 1))])
def test_the_product_spans_half_the_frames_limiting_side_and_stays_in_the_safe_zone(aspect, size):
    w, h = {"9:16": (1080, 1920), "16:9": (1920, 1080), "1:1": (1080, 1080)}[aspect]
    zone, points = safe_zone(aspect), box_points(*size)
    placed = place_camera(points, 18.0, 35.0, 50.0, w, h, 0.45, zone, min_share=0.5)
    xy = project(points, placed.camera, placed.elevation, 35.0, 50.0, w, h, zone)
    assert box_share(xy) >= 0.5 - 1e-3
    assert np.all(np.abs(xy[:, 0] - zone.centre_x) <= zone.half_w + 1e-6)
    assert np.all(np.abs(xy[:, 1] - zone.centre_y) <= zone.half_h + 1e-6)


def test_a_podium_never_runs_off_the_frame():
    points = box_points(1.0, 0.17, 0.04, z0=0.1)
    angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    rim = np.array([(0.6 * math.cos(a), 0.6 * math.sin(a), z) for a in angles for z in (0.0, 0.1)])
    placed = place_camera(points, 32.0, 0.0, 50.0, 1080, 1920, 0.9, safe_zone("9:16"), stage_points=rim, min_share=0.5)
    assert np.abs(project(rim, placed.camera, placed.elevation, 0.0, 50.0, 1080, 1920, safe_zone("9:16"))).max() <= 0.97


def _obj_vertices(path) -> np.ndarray:
    rows = [line.split()[1:] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(rows, dtype=float)[:, [0, 2, 1]] * [1, -1, 1]  # OBJ's Y up, as Blender imports it


def test_a_low_poly_can_lying_down_is_stood_up_but_a_lying_box_is_not(tmp_path):
    can = _obj_vertices(low_poly_can(tmp_path / "can.obj"))
    turned = can @ upright_rotation(can, "auto").T
    extent = turned.max(axis=0) - turned.min(axis=0)
    assert extent[2] == pytest.approx(12.0) and extent[0] < 7
    brick = box_points(3.0, 1.0, 1.0)
    assert np.allclose(upright_rotation(brick, "auto"), np.eye(3)), "a square section lies as it is"


def frame_with(product_box, shape=(100, 100), value=200):
    """A synthetic render: ``product_box`` (x0, y0, x1, y1 in pixels) is the product, the rest backdrop."""
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = product_box
    mask[y0:y1, x0:x1] = 1.0
    image = np.full((h, w, 3), 40, np.uint8)
    image[mask > 0] = value
    return image, mask


def test_a_well_framed_render_passes_and_says_why():
    image, mask = frame_with((25, 20, 75, 80))
    report = check_render(image, mask, "1:1")
    assert report.passed, report.failures
    assert report.box == [0.25, 0.2, 0.75, 0.8] and report.box_share == pytest.approx(0.6)
    assert report.coverage == pytest.approx(0.3) and report.as_dict()["passed"] is True


@pytest.mark.parametrize(
    "box, aspect, shape, reason",
    [
        ((0, 20, 60, 80), "1:1", (100, 100), "touches the frame's edge"),
        ((40, 40, 60, 60), "1:1", (100, 100), "spans 20% of the frame"),
        ((49, 20, 51, 80), "1:1", (100, 100), "cover"),
        ((20, 10, 80, 120), "9:16", (178, 100), "interface bands"),
    ],
)
def test_a_render_that_breaks_a_rule_fails_naming_it(box, aspect, shape, reason):
    image, mask = frame_with(box, shape)
    report = check_render(image, mask, aspect)
    assert not report.passed and any(reason in f for f in report.failures), report.failures


def test_clipped_highlights_hidden_product_a_low_camera_and_a_wrong_colourway_fail():
    image, mask = frame_with((25, 20, 75, 80), value=255)
    assert any("clipped" in f for f in check_render(image, mask, "1:1").failures)
    image, mask = frame_with((25, 20, 75, 80))
    whole = mask.copy()
    mask[60:80] = 0  # the podium hides the bottom third
    failures = check_render(image, mask, "1:1", unoccluded=whole).failures
    assert any("hidden" in f for f in failures)
    assert any("below the floor" in f for f in check_render(image, whole, "1:1", camera_above_floor=False).failures)
    report = check_render(image, whole, "1:1", delta_e={"case": 2.1, "strap": 7.5})
    assert report.failures == ["colourway 'strap' is CIEDE2000 7.5 from its swatch (at most 5)"]


def test_grain_inside_the_product_is_measured_in_levels():
    rng = np.random.default_rng(0)
    image, mask = frame_with((20, 20, 80, 80), value=128)
    image[20:80, 20:80] = np.clip(128 + rng.normal(0, 12, (60, 60, 1)), 0, 255).astype(np.uint8)
    report = check_render(image, mask, "1:1", thresholds=Thresholds(max_noise=6))
    assert report.noise > 6 and any("grain" in f for f in report.failures)


def test_grain_is_not_judged_on_a_product_too_small_in_the_frame_for_a_spread_to_mean_noise():
    rng = np.random.default_rng(0)
    image, mask = frame_with((45, 45, 55, 55), value=128)  # 10x10 of 100x100: 36 inner pixels, under 1%
    image[45:55, 45:55] = np.clip(128 + rng.normal(0, 12, (10, 10, 1)), 0, 255).astype(np.uint8)
    report = check_render(image, mask, "1:1", thresholds=Thresholds(max_noise=6, min_coverage=0, min_box_share=0))
    assert report.noise == 0.0 and not any("grain" in f for f in report.failures)


def test_slots_match_exactly_first_then_a_lone_duplicate_and_anything_else_is_refused():
    assert resolve_slot("Material", ["Material", "Material.001"]) == "Material"
    assert resolve_slot("lambert1", ["lambert1.001", "cap"]) == "lambert1.001"
    with pytest.raises(ModelError, match=r"ambiguous.*'lambert1.001', 'lambert1.002'"):
        resolve_slot("lambert1", ["lambert1.001", "lambert1.002"])
    with pytest.raises(ModelError, match=r"'cap'; the model has \['body'\]"):
        resolve_slot("cap", ["body"])


def test_an_unknown_slot_and_an_absurd_size_are_refused_before_rendering(tmp_path):
    models = write_corpus(tmp_path)
    check_render_inputs(models["watch"], {"strap": "#2E5E4E", "case": "#AAAAAA"})
    with pytest.raises(ModelError, match=r"watch.obj: colourway names material slot 'bezel'"):
        check_render_inputs(models["watch"], {"bezel": "#2E5E4E"})
    huge = tmp_path / "huge.obj"
    huge.write_text("v 0 0 0\nv 50000 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(ModelError, match=r"huge.obj: absurd model size \(50000 units across"):
        check_render_inputs(huge)
    huge.write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(ModelError, match="non-finite vertex positions"):
        check_render_inputs(huge)


def _glb(scale: float) -> bytes:
    """A one-triangle GLB, 1 unit across, under a parent node scaled by ``scale``."""
    positions = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
    document = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"children": [1], "scale": [scale] * 3}, {"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "material": 0}]}],
        "materials": [{"name": "body"}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
        "bufferViews": [{"buffer": 0, "byteLength": len(positions)}],
        "buffers": [{"byteLength": len(positions)}],
    }  # fmt: skip
    body = json.dumps(document).encode()
    body += b" " * (-len(body) % 4)
    blob = positions + b"\0" * (-len(positions) % 4)
    glb = struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(body) + 8 + len(blob))
    glb += struct.pack("<II", len(body), 0x4E4F534A) + body + struct.pack("<II", len(blob), 0x004E4942) + blob
    return glb


def test_a_gltf_size_includes_its_node_transforms(tmp_path):
    path = tmp_path / "scaled.glb"
    path.write_bytes(_glb(scale=0.01))
    check_render_inputs(path, {"body": "#FFFFFF"})  # 1 cm across, and the slot is there
    path.write_bytes(_glb(scale=1e5))
    with pytest.raises(ModelError, match=r"absurd model size \(100000 units across"):
        check_render_inputs(path)


def test_the_corpus_covers_the_shapes_that_broke_the_stage(tmp_path):
    kinds = {}
    for name, path in write_corpus(tmp_path).items():
        v = _obj_vertices(path)
        v = v @ upright_rotation(v, "auto").T
        kinds[name] = Shape.of(v / (v.max(axis=0) - v.min(axis=0)).max()).kind
    assert set(CORPUS) == set(kinds)
    assert kinds["watch"] == kinds["tote_bag"] == "flat"
    assert kinds["sofa"] == kinds["desk"] == "wide"
    assert kinds["floor_lamp"] == kinds["low_poly_can"] == "tall"


@pytest.mark.parametrize("widths", [[0.07], [0.07, 0.2], [0.3, 0.05, 0.05], [0.1, 0.4, 0.02, 0.2, 0.1]])
def test_a_bundle_stands_in_a_row_the_lead_in_the_middle_and_no_two_products_overlap(widths):
    from rendering.staging import BUNDLE_GAP, bundle_layout

    centres = bundle_layout(widths)
    spans = sorted((c - w / 2, c + w / 2) for c, w in zip(centres, widths))
    gap = BUNDLE_GAP * float(np.mean(widths))
    assert all(b[0] - a[1] >= gap - 1e-9 for a, b in zip(spans, spans[1:]))  # side by side, never touching
    assert spans[0][0] == pytest.approx(-spans[-1][1])  # the row is centred
    order = sorted(range(len(widths)), key=lambda i: centres[i])
    assert order.index(0) == len(widths) // 2 - (len(widths) % 2 == 0)  # the lead in the middle (left of it when even)


def test_bundle_qa_names_the_product_that_is_hidden_cut_off_or_too_small():
    from rendering.qa import QAReport, check_products

    frame = np.zeros((100, 100), np.float32)
    bottle, can, cup = frame.copy(), frame.copy(), frame.copy()
    bottle[20:80, 40:50] = 1
    can[60:80, 60:75] = 1
    cup[50:80, 90:100] = 1  # runs off the right edge
    bottle_seen = bottle.copy()
    can_seen = can.copy()
    can_seen[60:80, 60:70] = 0  # two thirds of it behind the bottle
    tiny = frame.copy()
    tiny[10:12, 10:12] = 1
    report = QAReport([0.4, 0.2, 1.0, 0.8], 0.6, 0.1, False, 0, 0.0, 0.0, 0.0, True)
    checked = check_products(
        report, [(bottle_seen, bottle), (can_seen, can), (cup, cup), (tiny, tiny)], ["a.glb", "b.obj", "c.glb", "d.glb"]
    )
    assert not checked.passed and [p["name"] for p in checked.products] == ["a.glb", "b.obj", "c.glb", "d.glb"]
    assert checked.failures == [
        "67% of b.obj is hidden by the other products",
        "c.glb touches the frame's edge",
        "d.glb spans 2% of the frame (needs 8%)",
    ]
    assert check_products(report, [(bottle, bottle)], ["a.glb"]).passed


def test_a_bundle_of_an_obj_needs_its_height_as_an_obj_carries_no_unit(tmp_path):
    from rendering.model_check import check_bundle_sizes

    can = low_poly_can(tmp_path / "can.obj")
    check_bundle_sizes([(can, None)])  # one product is normalised: no unit needed
    check_bundle_sizes([("bottle.glb", None), (can, 0.12)])
    with pytest.raises(ModelError, match=r"can.obj: an OBJ carries no unit: give its height_m"):
        check_bundle_sizes([("bottle.glb", None), (can, None)])
