"""The brief form's mapping from a submitted form to the brief's YAML (pure)."""

from pipelines.brief_form import apply_form, apply_new_form, decide_approval, form_view, new_brief_data

DATA = {
    "name": "aqua", "palette": ["#1F6FEB", "#E8D5C4"], "goal": "ctr", "daily_budget": 600.0, "currency": "USD",
    "templates": ["studio", "podium"], "aspects": ["1:1"], "channels": ["meta"], "meta": {"account_id": "act_1"},
    "autoplay": {"activate": True, "live_variants": 4},
}  # fmt: skip


def submitted(**changes) -> dict[str, list[str]]:
    """The form as a browser sends it untouched (pickers lower-case what they show), with changes."""
    form = {"goal": ["ctr"], "daily_budget": ["600.0"], "currency": ["USD"], "templates": ["studio", "podium"],
            "aspects": ["1:1"], "channels": ["meta"], "autoplay_on": ["1"]}  # fmt: skip
    for i, c in enumerate([*DATA["palette"], ""]):
        form |= {f"palette_hex_{i}": [c], f"palette_was_{i}": [c], f"palette_pick_{i}": [(c or "#ffffff").lower()]}
    return form | {k: [v] if isinstance(v, str) else v for k, v in changes.items()}


def test_an_untouched_form_changes_nothing_and_keeps_the_fields_it_does_not_edit():
    assert apply_form(DATA, submitted()) == DATA


def test_a_typed_hex_wins_a_moved_picker_counts_and_a_cleared_row_goes():
    assert apply_form(DATA, submitted(palette_hex_0="#2e5e4e"))["palette"] == ["#2e5e4e", "#E8D5C4"]
    assert apply_form(DATA, submitted(palette_pick_1="#b03a2e"))["palette"] == ["#1F6FEB", "#B03A2E"]
    assert apply_form(DATA, submitted(palette_hex_1=""))["palette"] == ["#1F6FEB"]
    assert apply_form(DATA, submitted(palette_remove_0="1"))["palette"] == ["#E8D5C4"]
    assert apply_form(DATA, submitted(palette_hex_2="#000000"))["palette"] == [*DATA["palette"], "#000000"]


def test_turning_the_gate_on_approves_what_runs_now_and_new_families_wait():
    gated = apply_form(DATA, submitted(approval_needed="1", templates=["studio", "podium", "hero"]))
    assert gated["autoplay"]["approved_templates"] == ["studio", "podium"] and "hero" in gated["templates"]
    assert form_view(gated).approval_needed
    approved = decide_approval(gated, "template", "hero", approve=True)
    assert approved["autoplay"]["approved_templates"] == ["studio", "podium", "hero"]
    rejected = decide_approval(gated, "template", "hero", approve=False)
    assert "hero" not in rejected["templates"]
    assert "approved_templates" not in apply_form(gated, submitted())["autoplay"]  # gate off


def test_the_gate_holds_new_colours_until_approved_and_a_rejected_colour_is_remembered():
    gated = apply_form(DATA, submitted(approval_needed="1"))
    assert gated["autoplay"]["approved_colours"] == []  # new colours wait; the palette itself is the brand's
    approved = decide_approval(gated, "colour", "#3A7FF5", approve=True)
    assert approved["autoplay"]["approved_colours"] == ["#3A7FF5"]
    rejected = decide_approval(approved, "colour", "#0057D0", approve=False)
    assert rejected["autoplay"]["rejected_colours"] == ["#0057D0"] and rejected["palette"] == DATA["palette"]
    off = apply_form(rejected, submitted())["autoplay"]
    assert "approved_colours" not in off and off["rejected_colours"] == ["#0057D0"]  # gate off: still rejected


def test_a_new_brief_starts_from_the_brands_account_and_shop_but_not_another_products_ids():
    other = DATA | {"meta": {"account_id": "act_1", "page_id": "2", "campaign_id": "3", "ad_sets": {"feed": "4"}},
                    "shopify": {"shop": "aqua.myshopify.com", "product_id": "gid://shopify/Product/5"}}  # fmt: skip
    start = new_brief_data(other, "Aqua Co")
    assert start["meta"] == {"account_id": "act_1", "page_id": "2"} and start["shopify"] == {
        "shop": "aqua.myshopify.com"
    }
    assert start["palette"] == [] and start["autoplay"] == {"activate": False}
    form = submitted(name=" aqua-flask ", brand="Aqua Co", product_url="https://x.example/p", product_message="Hi",
                     meta_account_id="act_1", meta_page_id="2", meta_campaign_id="9", channels=["meta"])  # fmt: skip
    data = apply_new_form(start, form, "model.glb")
    assert data["name"] == "aqua-flask" and data["product"]["model"] == "model.glb"
    assert data["meta"] == {"account_id": "act_1", "page_id": "2", "campaign_id": "9"}
    assert "shopify" not in data  # a channel not chosen leaves no section behind
