import re

import pytest

from creative.brief import BriefError, load_brief
from tests.conftest import EXAMPLE_BRIEF


def test_example_brief_loads_with_model_resolved_next_to_it():
    brief = load_brief(EXAMPLE_BRIEF)
    assert brief.product.model.is_file()
    assert brief.palette[0] == "#E8D5C4"
    assert brief.meta.account_id.startswith("act_")


@pytest.mark.parametrize(
    ("override", "field", "problem"),
    [
        ({"palette": ["#E8D5C4", "teal"]}, "palette", "'teal' is not a colour"),
        ({"templates": ["studio", "disco"]}, "templates", "unknown template 'disco'"),
        ({"aspects": ["1:1", "3:2"]}, "aspects", "unknown aspect ratio '3:2'"),
        ({"daily_budget": -5}, "daily_budget", "greater than 0"),
        ({"goal": "likes"}, "goal", "'roas' or 'cost_per_purchase'"),
        ({"meta": None}, "brief", "no 'meta' section"),
        ({"product.model": "missing.glb"}, "product.model", "no model file"),
        ({"autoplay.keep_per_generation": 9}, "brief", "keep_per_generation must be smaller"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
        ({"product.height_m": "26cm"}, "product.height_m", "valid number"),
        ({"shopify.model_3d": "yes"}, "shopify.model_3d", "valid boolean"),
    ],
)
def test_a_wrong_brief_names_the_file_the_field_and_the_problem(brief_file, override, field, problem):
    path = brief_file(**override)
    with pytest.raises(BriefError) as err:
        load_brief(path)
    message = str(err.value)
    assert str(path) in message
    assert field in message
    assert problem in message


def test_brief_that_is_not_yaml_mapping(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(BriefError, match="mapping"):
        load_brief(path)


@pytest.mark.parametrize(
    "override, problem",
    [
        ({"daily_budget": float("inf")}, "daily_budget"),
        ({"daily_budget": 1e308}, "daily_budget"),
        ({"daily_budget": "600"}, "daily_budget"),
        ({"daily_budget": True}, "daily_budget"),
        ({"daily_budget": -5}, "daily_budget"),
        ({"currency": "XYZ"}, "ISO 4217"),
        ({"autoplay.live_variants": "6"}, "autoplay.live_variants"),
        ({"autoplay.exploration_floor": float("nan")}, "autoplay.exploration_floor"),
        ({"brand": "x" * 1000}, "brand"),
        ({"palette": ["#111111"] * 100}, "palette"),
        ({"product.model": "../../../../etc/passwd"}, "outside the brief's folder"),
        ({"product.model": "/etc/passwd"}, "outside the brief's folder"),
        ({"product.colourway": {"cap": "#00C853"}}, "field 'product': "),
    ],
)
def test_hostile_briefs_are_refused_naming_the_field(brief_file, override, problem):
    with pytest.raises(BriefError) as err:
        load_brief(brief_file(**override))
    assert problem in str(err.value)


def test_a_duplicated_key_is_an_error_not_a_silent_winner(tmp_path):
    text = EXAMPLE_BRIEF.read_text().replace("daily_budget: 600.0", "daily_budget: 600.0\ndaily_budget: 60000.0")
    (tmp_path / "brief.yaml").write_text(text)
    (tmp_path / "WaterBottle.glb").write_bytes((EXAMPLE_BRIEF.parent / "WaterBottle.glb").read_bytes())
    with pytest.raises(BriefError, match="'daily_budget' appears twice"):
        load_brief(tmp_path / "brief.yaml")


def test_a_bundle_brief_names_its_other_products_and_each_is_checked_like_the_product(brief_file, tmp_path):
    from creative.vocabulary import VariantFactors
    from pipelines.stages import render_job
    from tests.rendering.corpus import low_poly_can

    can = low_poly_can(tmp_path / "can.obj")
    bundle = {"templates": ["bundle", "studio"], "products": [{"model": "can.obj", "height_m": 0.12,
                                                                "colourway": {"label": "#B03A2E"}}]}  # fmt: skip
    brief = load_brief(brief_file(**bundle))
    assert brief.products[0].model == can.resolve()
    job = render_job(brief, VariantFactors(template="bundle", colour="#E8D5C4", aspect="1:1"), "thumbnail")
    assert [(p.model_path, p.height_m) for p in job.companions] == [(str(can.resolve()), 0.12)]
    single = render_job(load_brief(brief_file()), VariantFactors(template="studio", colour="#E8D5C4", aspect="1:1"),
                        "thumbnail")  # fmt: skip
    assert job.variant_id != single.variant_id and single.companions == ()
    refusals = [
        ({"templates": ["bundle"]}, "templates ['bundle'] show a bundle: name its other products in 'products'"),
        ({**bundle, "products": [{"model": "can.obj"}]}, "field 'products': "),
        ({**bundle, "products": [{"model": "can.obj", "height_m": 0.1, "colourway": {"lid": "#000000"}}]},
         "field 'products.0': "),
        ({**bundle, "products": [{"model": "../../etc/passwd", "height_m": 0.1}]}, "field 'products.0.model': "),
    ]  # fmt: skip
    for override, message in refusals:
        with pytest.raises(BriefError, match=re.escape(message)):
            load_brief(brief_file(**override))
