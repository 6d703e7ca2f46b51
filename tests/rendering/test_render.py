"""Real Cycles renders at thumbnail size, in the worker process."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rendering.batch import render_batch
from rendering.colour import hex_to_rgb8
from rendering.contact_sheet import contact_sheet
from rendering.profiles import PROFILES, pixel_size
from rendering.spec import RenderJob
from tests.conftest import WATERBOTTLE

COLOUR = "#1F6FEB"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("renders")
    broken = out.parent / "broken.glb"
    broken.write_bytes(b"glTF\x02\x00\x00\x00 this is not a model")
    jobs = [
        RenderJob(model_path=str(WATERBOTTLE), template="studio", colour=COLOUR, aspect="1:1", profile="thumbnail"),
        RenderJob(model_path=str(broken), template="studio", colour=COLOUR, aspect="1:1", profile="thumbnail"),
        RenderJob(model_path=str(WATERBOTTLE), template="podium", colour="#E8D5C4", aspect="9:16", profile="thumbnail"),
    ]
    return out, jobs, render_batch(jobs, out)


def test_each_render_has_the_exact_pixel_size_and_the_brand_hex_background(batch):
    out, jobs, results = batch
    for job, result in zip(jobs[::2], results[::2]):
        assert result["status"] == "ok"
        image = np.asarray(Image.open(f"{result['dir']}/still.png").convert("RGB"))
        assert image.shape[1::-1] == pixel_size(job.aspect, PROFILES["thumbnail"])
        assert tuple(image[0, 0]) == hex_to_rgb8(job.colour)  # top corner: backdrop, exact
        jpeg = np.asarray(Image.open(f"{result['dir']}/still.jpg").convert("RGB")).astype(int)
        assert np.abs(jpeg[0, 0] - np.array(hex_to_rgb8(job.colour))).max() <= 2


def test_the_product_is_visible_upright_and_fills_its_share(batch):
    _, jobs, results = batch
    image = np.asarray(Image.open(f"{results[0]['dir']}/still.png").convert("RGB")).astype(int)
    differs = np.abs(image - np.array(hex_to_rgb8(COLOUR))).sum(axis=2) > 60
    ys, xs = np.nonzero(differs)
    # the bottle is red/white on blue: its pixels are warm. Shadows on the floor are darker blue.
    warm = differs & (image[..., 0] > image[..., 2])
    wy, wx = np.nonzero(warm)
    height, width = (wy.max() - wy.min()) / image.shape[0], (wx.max() - wx.min()) / image.shape[1]
    assert height > 0.45, "product should fill a good share of the frame"
    assert height > 2 * width, "a bottle standing upright is taller than wide"
    assert abs((wx.min() + wx.max()) / 2 / image.shape[1] - 0.5) < 0.1, "product is centred"
    assert len(ys) > len(wy)  # there is a floor shadow besides the product


def test_a_broken_model_fails_with_its_reason_and_leaves_no_files(batch):
    out, jobs, results = batch
    assert results[1]["status"] == "failed"
    assert "broken.glb" in results[1]["error"]
    assert not (out / jobs[1].variant_id).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


def test_manifest_records_inputs_timings_and_device(batch):
    import json

    _, jobs, results = batch
    manifest = json.loads(Path(results[0]["dir"], "manifest.json").read_text())
    assert manifest["variant_id"] == jobs[0].variant_id
    assert set(manifest["inputs"]) >= {"model_sha256", "template_sha256", "code_sha256", "bpy_version"}
    assert manifest["device"]["kind"] == "CPU"
    assert manifest["timings_s"]["render"] > 0


def test_same_inputs_are_answered_from_the_cache_without_rendering(batch):
    out, jobs, results = batch
    before = (out / jobs[0].variant_id / "still.png").stat().st_mtime_ns
    again = render_batch([jobs[0]], out)
    assert again[0]["status"] == "cached"
    assert (out / jobs[0].variant_id / "still.png").stat().st_mtime_ns == before


def test_contact_sheet_lays_out_labelled_thumbnails(batch, tmp_path):
    _, _, results = batch
    items = [(f"{r['dir']}/still.png", r["variant_id"]) for r in results if r["status"] == "ok"]
    sheet = Image.open(contact_sheet(items, tmp_path / "sheet.png", title="test", cell=100))
    assert sheet.width >= 2 * 100 and sheet.height > 100
