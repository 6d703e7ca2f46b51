"""The brief form's mapping from a submitted form to the brief's YAML (pure)."""

from pipelines.brief_form import apply_form, decide_approval, form_view

DATA = {
    "name": "aqua", "palette": ["#1F6FEB", "#E8D5C4"], "goal": "ctr", "daily_budget": 600.0, "currency": "USD",
    "templates": ["studio", "podium"], "aspects": ["1:1"], "meta": {"account_id": "act_1"},
    "autoplay": {"activate": True, "live_variants": 4},
}  # fmt: skip


def submitted(**changes) -> dict[str, list[str]]:
    """The form as a browser sends it untouched (pickers lower-case what they show), with changes."""
    form = {"goal": ["ctr"], "daily_budget": ["600.0"], "currency": ["USD"], "templates": ["studio", "podium"],
            "aspects": ["1:1"], "autoplay_on": ["1"]}  # fmt: skip
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
    approved = decide_approval(gated, "hero", approve=True)
    assert approved["autoplay"]["approved_templates"] == ["studio", "podium", "hero"]
    rejected = decide_approval(gated, "hero", approve=False)
    assert "hero" not in rejected["templates"]
    assert "approved_templates" not in apply_form(gated, submitted())["autoplay"]  # gate off
