"""`autoplay render` and `autoplay templates` as a user runs them."""

import json

from typer.testing import CliRunner

from pipelines.cli import app
from rendering.templates import TEMPLATES
from tests.conftest import WATERBOTTLE

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
    cases = [
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
