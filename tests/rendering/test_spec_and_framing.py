import numpy as np
import pytest
from pydantic import ValidationError

from creative.vocabulary import ASPECTS, normalise_hex
from rendering.colour import hex_to_linear, srgb_to_linear
from rendering.framing import camera_basis, fields_of_view, fit_distance
from rendering.profiles import PROFILES, pixel_size
from rendering.spec import RenderJob
from tests.conftest import WATERBOTTLE


def job(**kw):
    return RenderJob(
        **{
            "model_path": str(WATERBOTTLE),
            "template": "studio",
            "colour": "#e8d5c4",
            "aspect": "1:1",
            "profile": "thumbnail",
            **kw,
        }
    )


def test_colours_are_normalised_and_converted_to_linear():
    assert normalise_hex("e8d5c4") == "#E8D5C4"
    with pytest.raises(ValueError, match="not a colour"):
        normalise_hex("#E8D5C")
    assert hex_to_linear("#FFFFFF") == (1.0, 1.0, 1.0)
    assert srgb_to_linear(0.5) == pytest.approx(0.214, abs=1e-3)


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_pixel_sizes_are_even_and_keep_the_aspect(profile, aspect):
    w, h = pixel_size(aspect, PROFILES[profile])
    nw, nh = ASPECTS[aspect]
    assert w % 2 == 0 and h % 2 == 0
    assert w / h == pytest.approx(nw / nh, rel=0.03)
    if profile == "production":
        assert (w, h) == (nw, nh)


def test_variant_id_is_a_content_hash_of_the_spec():
    assert job().variant_id == job(colour="#E8D5C4").variant_id
    others = {
        job(colour="#000000").variant_id,
        job(aspect="9:16").variant_id,
        job(template="hero").variant_id,
        job(profile="preview").variant_id,
    }
    assert job().variant_id not in others and len(others) == 4


def test_render_job_refuses_bad_input_naming_the_field():
    with pytest.raises(ValidationError, match="aspect"):
        job(aspect="2:1")
    with pytest.raises(ValidationError, match="template"):
        job(template="nope")


@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_fit_distance_puts_every_corner_inside_the_fill_share(aspect):
    w, h = ASPECTS[aspect]
    corners = np.array([[x, y, z] for x in (-0.15, 0.15) for y in (-0.15, 0.15) for z in (0.0, 1.0)])
    target = np.array([0, 0, 0.5])
    d = fit_distance(corners, target, 18, 35, 50, w, h, 0.6)
    to_cam, right, up = camera_basis(18, 35)
    rel = corners - (target + d * to_cam)
    depth = rel @ -to_cam
    hfov, vfov = fields_of_view(50, w, h)
    x = np.abs(rel @ right) / depth / np.tan(hfov / 2)
    y = np.abs(rel @ up) / depth / np.tan(vfov / 2)
    assert max(x.max(), y.max()) == pytest.approx(0.6, abs=0.01)  # fills its share, no more


@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_the_fitted_product_fills_its_share_of_the_safe_zone_and_stays_inside(aspect):
    from rendering.framing import project
    from rendering.profiles import safe_zone

    w, h = ASPECTS[aspect]
    zone = safe_zone(aspect)
    corners = np.array([[x, y, z] for x in (-0.15, 0.15) for y in (-0.15, 0.15) for z in (0.0, 1.0)])
    target = np.array([0, 0, 0.5])
    d = fit_distance(corners, target, 18, 35, 50, w, h, 0.6, zone)
    to_cam, _, _ = camera_basis(18, 35)
    xy = project(corners, target + d * to_cam, 18, 35, 50, w, h, zone)
    x_share = np.abs(xy[:, 0] - zone.centre_x).max() / zone.half_w
    y_share = np.abs(xy[:, 1] - zone.centre_y).max() / zone.half_h
    assert max(x_share, y_share) == pytest.approx(0.6, abs=0.01)
    assert xy[:, 1].max() <= zone.centre_y + zone.half_h and xy[:, 1].min() >= zone.centre_y - zone.half_h
    if aspect == "9:16":  # the story interface bands: top 14%, bottom 20%
        assert (1 - xy[:, 1].max()) / 2 >= 0.14 and (1 + xy[:, 1].min()) / 2 >= 0.20


def test_the_horizon_sits_above_the_centre_when_looking_down_and_below_when_looking_up():
    from rendering.framing import FULL_FRAME, horizon_from_top

    assert horizon_from_top(0.0, 50, 1080, 1080, FULL_FRAME) == pytest.approx(0.5)
    assert horizon_from_top(4.0, 85, 1080, 1080, FULL_FRAME) < 0.5 < horizon_from_top(-6.0, 65, 1080, 1080, FULL_FRAME)


def test_rewording_a_template_keeps_every_variant_id_but_a_recipe_change_does_not(monkeypatch):
    from creative import vocabulary as templates

    job = RenderJob(model_path=str(WATERBOTTLE), template="studio", colour="#1F6FEB", aspect="1:1")
    before = job.variant_id
    studio = templates.TEMPLATES["studio"]
    monkeypatch.setitem(templates.TEMPLATES, "studio", studio.model_copy(update={"description": "Reworded."}))
    assert job.variant_id == before
    monkeypatch.setitem(templates.TEMPLATES, "studio", studio.model_copy(update={"lens_mm": 85.0}))
    assert job.variant_id != before


def test_a_lifestyle_plate_looks_where_the_camera_looks_through_the_same_lens():
    from rendering.environment import pbr_neutral, plate, sample_equirect, view_directions
    from rendering.framing import FULL_FRAME, SafeZone

    rays = view_directions(18.0, 35.0, 50.0, 40, 30, FULL_FRAME)
    to_cam, _, up = camera_basis(18.0, 35.0)
    centre = (rays[14, 19] + rays[15, 20]) / 2
    assert np.allclose(centre / np.linalg.norm(centre), -to_cam, atol=0.02)  # the middle pixel looks ahead
    assert rays[0, 20] @ up > rays[-1, 20] @ up  # the top row looks higher than the bottom one
    # an equirect whose top half is sky (blue) and bottom half ground (brown): a camera above looks down at ground
    world = np.zeros((64, 128, 3), np.float32)
    world[:32], world[32:] = (0.1, 0.2, 0.8), (0.3, 0.2, 0.1)
    assert np.allclose(sample_equirect(world, np.array([[0.0, 0.0, 1.0]])), (0.1, 0.2, 0.8))
    assert np.allclose(sample_equirect(world, np.array([[0.3, 0.2, -0.9]])), (0.3, 0.2, 0.1))
    # a column-coded world: a quarter turn of the world shows what lay a quarter of the way round
    columns = np.broadcast_to(np.linspace(0, 1, 128, dtype=np.float32)[None, :, None], (64, 128, 3)).copy()
    ahead = sample_equirect(columns, np.array([[0.0, 1.0, 0.0]]))[0, 0]
    turned = sample_equirect(columns, np.array([[0.0, 1.0, 0.0]]), 90.0)[0, 0]
    assert abs(turned - ahead) == pytest.approx(0.25, abs=0.02)
    # the tone map keeps base colours (below 0.76) and rolls off highlights under white, never clipping
    assert np.allclose(pbr_neutral(np.array([0.5, 0.3, 0.2])), [0.46, 0.26, 0.16], atol=1e-6)
    assert (pbr_neutral(np.array([[50.0, 40.0, 30.0]])) < 1.0).all()
    image = plate(world, 4.0, 0.0, 50.0, 48, 64, SafeZone(0.0, 0.1, 0.8, 0.7), 1.0, 0.0)
    assert image.size == (48, 64) and image.mode == "RGBA"
    pixels = np.asarray(image)[..., :3].astype(int)
    assert pixels[2, 24, 2] > pixels[2, 24, 0] and pixels[-2, 24, 0] > pixels[-2, 24, 2]  # sky above, ground below


def test_a_staging_folder_is_swept_only_when_its_process_on_this_host_is_gone(tmp_path):
    import os
    import socket
    import subprocess

    from rendering.outputs import dead_staging, staging_prefix

    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    killed = tmp_path / f".vdead.{host}-{gone.pid}.x1y2"
    alive = tmp_path / f"{staging_prefix('vlive')}a9b8"  # this process: still writing it
    elsewhere = tmp_path / f".vfar.other-machine.example-{gone.pid}.z3"  # another host's pid means nothing here
    final = tmp_path / "vdone"
    for folder in (killed, alive, elsewhere, final):
        folder.mkdir()
    assert alive.name.startswith(f".vlive.{host}-{os.getpid()}.")
    assert dead_staging(tmp_path) == [killed]
