"""Model checks before any render, and the upright rotation, without Blender."""

import json
import struct

import numpy as np
import pytest

from rendering.model_check import ModelError, check_model_file
from rendering.orientation import scene_orientation, upright_rotation
from tests.conftest import WATERBOTTLE
from tests.rendering.models import broken_glb, lying_bottle_obj


def test_the_shipped_model_passes():
    assert check_model_file(WATERBOTTLE) == WATERBOTTLE


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("missing.glb", None, "no such model file"),
        ("empty.obj", b"", "the file is empty"),
        ("notes.txt", b"hello", "unsupported model format '.txt'"),
        ("photo.glb", b"\x89PNG\r\n\x1a\n" + b"0" * 40, "not a GLB file"),
        ("cut.glb", None, "truncated or padded GLB"),
        ("nomesh.gltf", json.dumps({"asset": {"version": "2.0"}, "meshes": []}).encode(), "no meshes"),
        ("bad.gltf", b"{not json", "does not parse"),
        (
            "lost.gltf",
            json.dumps({"asset": {"version": "2.0"}, "meshes": [{}], "images": [{"uri": "label.png"}]}).encode(),
            "images[0] refers to 'label.png'",
        ),
        ("points.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
        ("nomtl.obj", b"mtllib bottle.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "'bottle.mtl' is missing"),
        ("binary.obj", b"\xff\xfe\x00garbage", "binary content"),
        ("fake.blend", b"PK\x03\x04 a zip", "not a .blend file"),
    ],
)
def test_bad_models_are_refused_naming_the_file_and_the_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    if name == "cut.glb":
        path.write_bytes(WATERBOTTLE.read_bytes()[:5000])
    with pytest.raises(ModelError) as err:
        check_model_file(path)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_a_glb_header_that_lies_about_its_version_is_refused(tmp_path):
    data = bytearray(WATERBOTTLE.read_bytes())
    data[4:8] = struct.pack("<I", 1)
    path = tmp_path / "old.glb"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="version 1"):
        check_model_file(path)
    with pytest.raises(ModelError, match="truncated or padded GLB"):
        check_model_file(broken_glb(tmp_path / "broken.glb"))


def _obj_vertices(path) -> np.ndarray:
    rows = [line.split()[1:] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(rows, dtype=float)


def test_a_bottle_lying_on_its_side_is_stood_on_its_base(tmp_path):
    vertices = _obj_vertices(lying_bottle_obj(tmp_path / "bottle.obj"))  # along +X, base at x=0
    turned = vertices @ upright_rotation(vertices, "auto").T
    extent = turned.max(axis=0) - turned.min(axis=0)
    assert extent[2] == pytest.approx(26.0) and extent[0] == pytest.approx(8.0, abs=0.1)
    base = turned[:, 2] < turned[:, 2].min() + 1
    assert np.abs(turned[base][:, :2]).max() == pytest.approx(4.0, abs=0.05), "the wide base is at the bottom"


def test_the_same_bottle_pointing_the_other_way_also_lands_on_its_base(tmp_path):
    vertices = _obj_vertices(lying_bottle_obj(tmp_path / "bottle.obj")) * [-1, 1, 1]
    turned = vertices @ upright_rotation(vertices, "auto").T
    base = turned[:, 2] < turned[:, 2].min() + 1
    assert np.abs(turned[base][:, :2]).max() == pytest.approx(4.0, abs=0.05)


def test_products_that_lie_flat_on_purpose_are_left_alone():
    rng = np.random.default_rng(0)
    shoe = rng.uniform([-15, -5, 0], [15, 5, 12], size=(2000, 3))  # long, low, not round in section
    assert np.allclose(upright_rotation(shoe, "auto"), np.eye(3))
    upright = rng.uniform([-4, -4, 0], [4, 4, 26], size=(500, 3))
    assert np.allclose(upright_rotation(upright, "auto"), np.eye(3))


@pytest.mark.parametrize("axis, vector", [("+y", [0, 1, 0]), ("-x", [-1, 0, 0]), ("+z", [0, 0, 1]), ("-z", [0, 0, -1])])
def test_an_explicit_up_axis_is_turned_onto_z(axis, vector):
    rotation = upright_rotation(np.zeros((3, 3)), axis)
    assert rotation @ np.array(vector, dtype=float) == pytest.approx([0, 0, 1])
    assert np.linalg.det(rotation) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "axis, suffix, scene_axis",
    [("+z", ".obj", "-y"), ("-z", ".glb", "+y"), ("+y", ".gltf", "+z"), ("-x", ".OBJ", "-x"), ("+z", ".blend", "+z"),
     ("auto", ".obj", "auto"), ("as_is", ".glb", "as_is")],
)  # fmt: skip
def test_an_up_axis_names_the_model_files_own_axis(axis, suffix, scene_axis):
    """glTF and OBJ are Y-up and Blender's importers turn them Z-up: a Z-up OBJ's ``+z`` is the scene's ``-y``
    (a bowl modelled Z-up and said ``+z`` stood on its rim before this)."""
    assert scene_orientation(axis, suffix) == scene_axis
