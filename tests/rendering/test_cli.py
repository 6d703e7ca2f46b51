"""`autoplay render` and `autoplay templates` as a user runs them."""

import json

import pytest
from typer.testing import CliRunner

from creative.vocabulary import TEMPLATES
from pipelines.cli import app
from tests.conftest import WATERBOTTLE
from tests.rendering.corpus import write_corpus

pytestmark = pytest.mark.slow  # Blender, the real broker or the sandboxes: the integration lane

runner = CliRunner()


def test_templates_lists_every_template_with_a_description():
    result = runner.invoke(app, ["templates"])
    assert result.exit_code == 0
    for t in TEMPLATES.values():
        assert t.name in result.output and t.description[:30] in result.output.replace("\n", " ")


def test_render_writes_files_a_manifest_per_render_and_a_contact_sheet(tmp_path):
    args = ["render", str(WATERBOTTLE), "--template", "hero", "--colour", "#111827", "--accent-colour", "#F4C430"]
    result = runner.invoke(app, [*args, "--aspect", "1:1", "--aspect", "16:9", "--profile", "thumbnail",
                                 "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifests = [json.loads(p.read_text()) for p in tmp_path.glob("v*/manifest.json")]
    assert sorted(m["job"]["aspect"] for m in manifests) == ["16:9", "1:1"]
    assert all(m["job"]["accent_colour"] == "#F4C430" for m in manifests)
    assert (tmp_path / "contact_sheet.png").is_file()


def test_render_refuses_bad_input_with_a_clear_message_and_renders_nothing(tmp_path):
    models = write_corpus(tmp_path / "corpus")
    huge = tmp_path / "huge.obj"
    huge.write_text("v 0 0 0\nv 0 0 25000\nv 0 1 0\nf 1 2 3\n")
    twins = tmp_path / "twins.obj"
    twins.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl body.001\nf 1 2 3\nusemtl body.002\nf 1 2 3\n")
    white = ["--template", "studio", "--colour", "#FFFFFF"]
    cases = [
        (["render", str(models["watch"]), *white, "--colourway", "bezel=#2E5E4E"], "slot 'bezel'; the model has"),
        (["render", str(twins), *white, "--colourway", "body=#2E5E4E"], "slot 'body' is ambiguous"),
        (["render", str(huge), *white], "huge.obj: absurd model size (25000 units across"),
        (["render", str(tmp_path / "nope.glb"), "--template", "studio", "--colour", "#FFFFFF"], "nope.glb: no such"),
        (["render", str(WATERBOTTLE), "--template", "glossy", "--colour", "#FFFFFF"], "unknown template 'glossy'"),
        (["render", str(WATERBOTTLE), "--template", "studio", "--colour", "blue"], "colour: 'blue' is not a colour"),
        (["render", str(WATERBOTTLE), "--template", "studio", "--colour", "#FFFFFF", "--aspect", "3:2"], "'3:2'"),
        (["render", str(WATERBOTTLE), "--template", "studio", "--colour", "#FFFFFF", "--colourway", "cap"], "SLOT="),
    ]
    for args, message in cases:
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (message, result.output)
    assert not (tmp_path / "out").exists()


def test_rendering_into_a_folder_again_adds_to_its_contact_sheet_and_prints_the_qa(tmp_path):
    from PIL import Image

    base = ["render", str(WATERBOTTLE), "--colour", "#E8D5C4", "--profile", "thumbnail", "--out", str(tmp_path)]
    first = runner.invoke(app, [*base, "--template", "studio"])
    assert first.exit_code == 0, first.output
    assert "QA: box" in first.output and "pass" in first.output
    one = Image.open(tmp_path / "contact_sheet.png").size
    second = runner.invoke(app, [*base, "--template", "podium"])
    assert second.exit_code == 0, second.output
    two = Image.open(tmp_path / "contact_sheet.png").size
    assert two[0] > one[0], "the second render joins the first on the sheet"


def test_render_of_several_models_is_one_bundle_at_their_real_sizes_each_product_checked(tmp_path):
    models = write_corpus(tmp_path / "corpus")
    bundle = [str(WATERBOTTLE), str(models["low_poly_can"]), str(models["white_box"])]
    common = ["--colour", "#E8E4DC", "--profile", "thumbnail", "--out", str(tmp_path / "out")]
    for args, message in [
        ([*bundle], "low_poly_can.obj: an OBJ carries no unit: give its height_m"),
        ([*bundle, "--height-m", "0.26"], "--height-m: 1 heights for 3 models"),
    ]:
        result = runner.invoke(app, ["render", *args, "--template", "bundle", *common])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    heights = ["--height-m", "0.26", "--height-m", "0.12", "--height-m", "0.1"]
    aspects = ["--aspect", "1:1", "--aspect", "9:16", "--aspect", "16:9"]
    result = runner.invoke(app, ["render", *bundle, *heights, "--template", "bundle", "--template", "bundle-podium",
                                 *aspects, *common])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("v*/manifest.json")]
    assert len(manifests) == 6
    for m in manifests:
        assert m["qa"]["passed"], (m["job"]["template"], m["job"]["aspect"], m["qa"]["failures"])
        assert [p["name"] for p in m["qa"]["products"]] == ["WaterBottle.glb", "low_poly_can.obj", "white_box.obj"]
        assert all(p["hidden_by_others"] <= 0.15 and not p["touches_edge"] for p in m["qa"]["products"])
        sizes = [p["size_m"] for p in m["normalised"]["products"]]
        assert [round(s[2], 3) for s in sizes] == [0.26, 0.12, 0.1]  # stood up, at the heights given
    assert (tmp_path / "out" / "contact_sheet.png").is_file()
