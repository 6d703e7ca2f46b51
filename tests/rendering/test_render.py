"""Real Cycles renders at thumbnail size, in worker processes: one batch shared by the tests below."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from creative.vocabulary import ASPECTS, TEMPLATES
from rendering.batch import render_batch
from rendering.colour import hex_to_rgb8
from rendering.contact_sheet import contact_sheet
from rendering.profiles import PROFILES, pixel_size
from rendering.spec import RenderJob
from rendering.video import describe
from tests.conftest import WATERBOTTLE
from tests.rendering.models import broken_glb, lying_bottle_obj, mug_blend

pytestmark = pytest.mark.slow  # Blender, the real broker or the sandboxes: the integration lane

BLUE = "#1F6FEB"
PER_WORKER = 6


def still(model, **kw) -> RenderJob:
    return RenderJob(**{"model_path": str(model), "template": "studio", "colour": BLUE, "aspect": "1:1",
                        "profile": "thumbnail", **kw})  # fmt: skip


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    out = tmp_path_factory.mktemp("renders")
    mug = mug_blend(models / "mug.blend")
    jobs = {
        **{f"aspect {a}": still(WATERBOTTLE, aspect=a) for a in ASPECTS},
        "broken": still(broken_glb(models / "broken.glb")),
        "podium": still(WATERBOTTLE, template="podium", colour="#E8D5C4", podium_colour="#2E7D32", aspect="9:16"),
        "obj in cm on its side": still(lying_bottle_obj(models / "bottle.obj"), colour="#F4C430"),
        "blend": still(mug, template="tabletop", colour="#E8D5C4"),
        "colourway": still(WATERBOTTLE, colourway={"lambert1": "#00C853"}),
        "unknown slot": still(WATERBOTTLE, colourway={"cap": "#00C853"}),
        "turntable": still(mug, kind="turntable", seconds=1.0, fps=12, template="podium"),
    }
    results = render_batch(list(jobs.values()), out, max_jobs_per_worker=PER_WORKER)
    return out, {name: (job, result) for (name, job), result in zip(jobs.items(), results)}


def image(result, name="still.png") -> np.ndarray:
    return np.asarray(Image.open(Path(result.dir) / name).convert("RGB")).astype(int)


def manifest(result) -> dict:
    return json.loads(Path(result.dir, "manifest.json").read_text())


def product_mask(pixels: np.ndarray, backdrop_hex: str) -> np.ndarray:
    """Pixels far from the backdrop colour in hue, not just darker: the product, not its shadow."""
    bg = np.array(hex_to_rgb8(backdrop_hex))
    chroma = pixels / np.maximum(pixels.sum(axis=2, keepdims=True), 1) - bg / bg.sum()
    return np.abs(chroma).sum(axis=2) > 0.12


@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_each_aspect_has_its_exact_pixel_size_and_the_brand_hex_background(batch, aspect):
    job, result = batch[1][f"aspect {aspect}"]
    assert result.status == "ok", result.error
    pixels = image(result)
    assert pixels.shape[1::-1] == pixel_size(aspect, PROFILES["thumbnail"])
    assert tuple(pixels[0, 0]) == hex_to_rgb8(BLUE)  # top corner: backdrop, exact
    jpeg = image(result, "still.jpg")
    assert np.abs(jpeg[0, 0] - np.array(hex_to_rgb8(BLUE))).max() <= 2


@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_the_product_is_upright_fills_its_share_and_stays_in_the_safe_zone(batch, aspect):
    job, result = batch[1][f"aspect {aspect}"]
    framing = manifest(result)["framing"]
    left, top, right, bottom = framing["measured_box"]  # from the render's alpha
    zone = framing["safe_zone"]
    zone_top, zone_bottom = (1 - zone["centre_y"] - zone["half_h"]) / 2, (1 - zone["centre_y"] + zone["half_h"]) / 2
    zone_left, zone_right = (1 + zone["centre_x"] - zone["half_w"]) / 2, (1 + zone["centre_x"] + zone["half_w"]) / 2
    assert zone_top <= top and bottom <= zone_bottom and zone_left <= left and right <= zone_right
    share = (bottom - top) / (zone_bottom - zone_top)
    assert 0.8 * framing["fill_used"] <= share <= framing["fill_used"] + 0.02, "fills its share of the safe zone"
    width, height = pixel_size(aspect, PROFILES["thumbnail"])
    assert (bottom - top) * height > 2 * (right - left) * width, "a bottle standing upright is taller than wide"
    # the same from the picture itself: the bottle's red and white differ in hue from the blue backdrop
    ys, xs = np.nonzero(product_mask(image(result), BLUE))
    assert abs(ys.min() / height - top) < 0.05 and abs((ys.max() + 1) / height - bottom) < 0.05


def test_a_story_frame_keeps_the_top_and_bottom_interface_bands_clear(batch):
    _, result = batch[1]["aspect 9:16"]
    _, top, _, bottom = manifest(result)["framing"]["measured_box"]
    assert top >= 0.14 and bottom <= 0.80


def test_a_model_in_centimetres_lying_on_its_side_is_stood_up_and_normalised(batch):
    job, result = batch[1]["obj in cm on its side"]
    assert result.status == "ok", result.error
    m = manifest(result)
    assert m["normalised"]["stood_up"] is True
    assert m["normalised"]["original_size"][2] == pytest.approx(26.0, rel=0.01)  # centimetres in, 1 unit tall out
    left, top, right, bottom = m["framing"]["measured_box"]
    w, h = pixel_size("1:1", PROFILES["thumbnail"])
    assert (bottom - top) * h > 2.2 * (right - left) * w, "upright: much taller than wide"
    assert abs((left + right) / 2 - 0.5) < 0.05, "centred"


def test_a_blend_file_renders_with_its_own_materials(batch):
    job, result = batch[1]["blend"]
    assert result.status == "ok", result.error
    pixels = image(result)
    red = (pixels[..., 0] > pixels[..., 1] + 60) & (pixels[..., 0] > pixels[..., 2] + 60)
    assert red.mean() > 0.03, "the mug's red glaze shows"
    assert manifest(result)["normalised"]["stood_up"] is False


def test_a_colourway_recolours_the_named_slot_and_an_unknown_slot_fails_naming_it(batch):
    _, plain = batch[1]["aspect 1:1"]
    _, recoloured = batch[1]["colourway"]
    assert recoloured.status == "ok", recoloured.error
    green = lambda p: ((p[..., 1] > p[..., 0] + 40) & (p[..., 1] > p[..., 2] + 40)).mean()  # noqa: E731
    assert green(image(recoloured)) > 0.05 > green(image(plain))
    _, unknown = batch[1]["unknown slot"]
    assert unknown.status == "failed" and "'cap'" in unknown.error and "lambert1" in unknown.error


def test_the_podium_takes_the_podium_colour(batch):
    _, result = batch[1]["podium"]
    pixels = image(result)
    _, _, _, bottom = manifest(result)["framing"]["measured_box"]
    row = pixels[int(bottom * pixels.shape[0]) - 2]  # the podium's front edge, just above its base
    assert ((row[:, 1] > row[:, 0] + 15) & (row[:, 1] > row[:, 2])).any(), "green podium under the product"


def test_a_turntable_is_h264_bt709_faststart_with_the_right_frames_and_loops_seamlessly(batch):
    import imageio_ffmpeg

    job, result = batch[1]["turntable"]
    assert result.status == "ok", result.error
    video = Path(result.dir) / "turntable.mp4"
    info = describe(video)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and "bt709" in info["colour"]
    assert info["faststart"] and info["fps"] == 12 and info["frames"] == 12
    assert info["seconds"] == pytest.approx(1.0, abs=0.05)
    assert info["size"] == list(pixel_size("1:1", PROFILES["thumbnail"]))
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3).astype(int) for f in reader]
    steps = [np.abs(a - b).mean() for a, b in zip(frames, frames[1:])]
    wrap = np.abs(frames[-1] - frames[0]).mean()
    half_turn = np.abs(frames[len(frames) // 2] - frames[0]).mean()
    assert min(steps) > 0, "the product turns"
    assert wrap <= 1.5 * np.median(steps) < half_turn, "last frame flows into the first like any other step"
    poster = image(result, "poster.png")
    assert poster.shape[:2] == frames[0].shape[:2]
    assert np.abs(poster - frames[0]).mean() < 0.5 * np.abs(poster - frames[len(frames) // 2]).mean(), (
        "poster = frame 0"
    )


def test_a_broken_model_fails_with_its_reason_and_leaves_no_files(batch):
    out, results = batch
    job, result = results["broken"]
    assert result.status == "failed"
    assert "broken.glb" in result.error and "GLB" in result.error
    assert not (out / job.variant_id).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary folders left behind"
    assert all(r.status == "ok" for name, (_, r) in results.items() if name not in ("broken", "unknown slot"))


def test_manifest_records_inputs_framing_timings_and_device(batch):
    job, result = batch[1]["aspect 1:1"]
    m = manifest(result)
    assert m["variant_id"] == job.variant_id
    assert set(m["inputs"]) >= {"model_sha256", "template_sha256", "code_sha256", "bpy_version", "device"}
    assert m["device"]["kind"] == "CPU" and m["inputs"]["device"] == "CPU"
    assert m["timings_s"]["render"] > 0 and m["spec"]["template"]["name"] == "studio"


def test_one_worker_imports_once_renders_many_and_is_replaced_after_its_job_limit(batch):
    manifests = [manifest(r) for _, r in batch[1].values() if r.status == "ok"]
    per_worker: dict[int, list[int]] = {}
    for m in manifests:
        per_worker.setdefault(m["worker"]["pid"], []).append(m["worker"]["job_number"])
    assert len(per_worker) >= 2 and max(max(v) for v in per_worker.values()) <= PER_WORKER
    bottle = [m for m in manifests if m["job"]["model_path"] == str(WATERBOTTLE) and not m["job"]["colourway"]]
    assert sum(m["timings_s"]["import"] == 0 for m in bottle) >= len(bottle) - 2, "the product stays loaded"


def test_same_inputs_are_answered_from_the_cache_and_a_changed_input_renders_again(batch):
    out, results = batch
    job, _ = results["aspect 1:1"]
    before = (out / job.variant_id / "still.png").stat().st_mtime_ns
    again = render_batch([job, job.model_copy(update={"colour": "#1F6FEC"})], out)
    assert again[0].status == "cached"
    assert (out / job.variant_id / "still.png").stat().st_mtime_ns == before
    assert again[1].status == "ok" and again[1].variant_id != job.variant_id


def test_contact_sheet_lays_out_labelled_thumbnails(batch, tmp_path):
    items = [
        (Path(r.dir) / "still.png", name)
        for name, (_, r) in batch[1].items()
        if r.manifest and "png" in r.manifest.files
    ]
    sheet = Image.open(contact_sheet(items, tmp_path / "sheet.png", title="test", cell=100, columns=4))
    assert sheet.width == 4 * 110 + 10 and sheet.height > 2 * 100


def test_at_least_six_templates_with_different_recipes():
    recipes = {(t.background, t.ground, t.lighting, t.camera, t.lens_mm) for t in TEMPLATES.values()}
    assert len(TEMPLATES) >= 6 and len(recipes) == len(TEMPLATES)
    assert {t.ground for t in TEMPLATES.values()} == {"shadow", "floor", "podium"}
    assert {t.camera for t in TEMPLATES.values()} == {"front", "three_quarter", "top_down", "low_angle"}
