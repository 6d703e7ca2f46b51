"""The loop's channel stages against the sandboxes: review retiring a disapproved variant, allocation over
the ad sets a brief names, and Shopify publication featuring the leader."""

import json
from datetime import date, timedelta

import pandas as pd
import pytest

from connectors.artifacts import FolderStore
from connectors.event_store import EventStore
from connectors.ledger import Ledger
from connectors.meta import MetaAds
from connectors.retry import Backoff
from connectors.sandbox.meta_graph import MetaGraphSandbox
from connectors.sandbox.shopify_admin import ShopifySandbox
from connectors.shopify import ShopifyAdmin
from creative.brief import load_brief
from experiments.market import SimulatedMarket
from pipelines import stages
from pipelines.status import brief_status
from tests.conftest import rendered_folder
from tests.rendering.models import lying_bottle_obj

pytestmark = pytest.mark.slow  # Blender, the real broker or the sandboxes: the integration lane

TOKEN = "stage-test-token-3f9a7c"
ACTOR = "test"
DAY = date(2026, 11, 1)
COLOURS = ["#E8D5C4", "#1F6FEB", "#2E7D32", "#F4C430"]


@pytest.fixture
def world(tmp_path, brief_file):
    """A brief, a ledger with one generation of four rendered variants, and the Meta sandbox."""

    def make(**overrides):
        brief = load_brief(brief_file(**{"autoplay.live_variants": 4, "autoplay.keep_per_generation": 2,
                                         "daily_budget": 400.0, **overrides}))  # fmt: skip
        ledger = Ledger(EventStore(tmp_path / "events.duckdb"))
        rows = []
        for i, colour in enumerate(COLOURS):
            rendered_folder(tmp_path / "renders" / f"vst{i}", colour)
            rows.append({"variant_id": f"vst{i}", "template": "studio", "colour": colour,
                         "aspect": "9:16" if i % 2 else "1:1", "profile": "preview"})  # fmt: skip
        ledger.start_generation(brief.name, 0, pd.DataFrame(rows), [], opened_on=DAY)
        for r in rows:
            ledger.set_render(r["variant_id"], "rendered", str(tmp_path / "renders" / r["variant_id"]))
        return brief, ledger

    with MetaGraphSandbox(SimulatedMarket(), TOKEN, "act_1000000000001", campaign_id="120000000000001") as sandbox:
        yield make, sandbox


def meta_client(brief, sandbox):
    return MetaAds(TOKEN, brief.meta.account_id, brief.meta.page_id, brief.meta.campaign_id, graph_url=sandbox.url,
                   ad_sets=dict(brief.meta.ad_sets), backoff=Backoff(sleep=lambda s: None))  # fmt: skip


def test_a_disapproved_ad_is_paused_and_its_variant_retired_and_never_allocated(world, tmp_path):
    make, sandbox = world
    brief, ledger = make()
    sandbox.inject("disapprove", match="|vst2")
    meta = meta_client(brief, sandbox)
    stages.publish(brief, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR)
    assert {r.effective_status for r in stages.review(brief, ledger, meta, ACTOR)} == {"PENDING_REVIEW"}
    reviews = {r.variant_id: r for r in stages.review(brief, ledger, meta, ACTOR)}
    assert reviews["vst2"].disapproved and not reviews["vst1"].disapproved
    retired = ledger.variant(brief.name, "vst2")["retired_reason"]
    assert retired.startswith("Meta disapproved ad") and "before-and-after" in retired
    decisions = ledger.decisions(brief.name)
    assert decisions[decisions["kind"] == "retire"]["variant_id"].tolist() == ["vst2"]
    shares = stages.allocate(brief, ledger, ledger.store, meta, DAY, ACTOR)
    assert "vst2" not in shares.index and len(shares) == 3
    ad = sandbox.objects[ledger.publications(brief.name, "meta").set_index("variant_id").loc["vst2", "ad_id"]]
    assert ad["status"] == "PAUSED" and ad["effective_status"] == "DISAPPROVED"
    assert stages.review(brief, ledger, meta, ACTOR) and ledger.variant(brief.name, "vst2")["retired_reason"] == retired


def test_allocation_sets_the_named_ad_sets_budgets_to_the_sum_of_their_variants(world, tmp_path):
    make, sandbox = world
    feed = sandbox._new("adset", {"name": "feed", "campaign_id": "120000000000001", "daily_budget": "100",
                                  "status": "PAUSED"})  # fmt: skip
    vertical = sandbox._new("adset", {"name": "stories", "campaign_id": "120000000000001", "daily_budget": "100",
                                      "status": "PAUSED"})  # fmt: skip
    brief, ledger = make(**{"meta.ad_sets": {"feed": feed["id"], "vertical": vertical["id"]}})
    meta = meta_client(brief, sandbox)
    published = stages.publish(brief, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR)
    assert {p["adset_id"] for p in published} == {feed["id"], vertical["id"]}
    assert sum(o["type"] == "adset" for o in sandbox.objects.values()) == 2  # no ad set of their own
    stages.allocate(brief, ledger, ledger.store, meta, DAY, ACTOR)
    decisions = ledger.decisions(brief.name)
    cents = {r.variant_id: json.loads(r.factors)["daily_budget_cents"] for r in decisions.itertuples()}
    assert int(feed["daily_budget"]) == cents["vst0"] + cents["vst2"]
    assert int(vertical["daily_budget"]) == cents["vst1"] + cents["vst3"]
    assert int(feed["daily_budget"]) + int(vertical["daily_budget"]) <= 40000  # the brief's cap


def test_shopify_publication_attaches_every_live_render_once(world, tmp_path):
    make, _ = world
    brief, ledger = make()
    with ShopifySandbox("shpat_stage_token_1234", "secret-1234567890") as shop:
        admin = ShopifyAdmin(brief.shopify.shop, "shpat_stage_token_1234", shop.url, poll_s=0.0)
        first = stages.publish_shopify(brief, ledger, ledger.store, admin, FolderStore(tmp_path / "renders"), ACTOR)
        again = stages.publish_shopify(brief, ledger, ledger.store, admin, FolderStore(tmp_path / "renders"), ACTOR)
        media = shop.products[brief.shopify.product_id]["media"]
    assert len(first) == 4 and again == [] and len(media) == 4
    assert all(m["status"] == "READY" for m in media)
    assert all(m["alt"].startswith("Aqua Co product in a studio scene on a #") for m in media)


def test_a_render_refused_by_qa_is_never_published_on_either_channel(world, tmp_path):
    make, sandbox = world
    brief, ledger = make()
    ledger.set_render("vst1", "qa_failed", str(tmp_path / "renders" / "vst1"), "touches the frame's edge")
    renders = FolderStore(tmp_path / "renders")
    ads = stages.publish(brief, ledger, meta_client(brief, sandbox), renders, ACTOR)
    with ShopifySandbox("shpat_stage_token_1234", "secret-1234567890") as shop:
        admin = ShopifyAdmin(brief.shopify.shop, "shpat_stage_token_1234", shop.url, poll_s=0.0)
        stages.publish_shopify(brief, ledger, ledger.store, admin, renders, ACTOR)
        media = shop.products[brief.shopify.product_id]["media"]
    assert len(ads) == 3 and len(media) == 3  # the refused render's files are there all the same
    for channel in ("meta", "shopify"):
        assert set(ledger.publications(brief.name, channel)["variant_id"]) == {"vst0", "vst2", "vst3"}, channel
    assert not any("vst1" in json.dumps(o, default=str) for o in sandbox.objects.values())  # no ad or creative of it


def test_a_paused_brief_keeps_every_ad_paused_day_after_day_and_resume_restores_it(world, tmp_path):
    make, sandbox = world
    brief, ledger = make()
    meta = meta_client(brief, sandbox)
    stages.publish(brief, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR)
    stages.allocate(brief, ledger, ledger.store, meta, DAY, ACTOR)
    ads = ledger.publications(brief.name, "meta")
    assert {sandbox.objects[a]["status"] for a in ads["ad_id"]} == {"ACTIVE"}  # the brief activates
    budgets = {a: int(sandbox.objects[a]["daily_budget"]) for a in ads["adset_id"]}
    ledger.set_paused(brief.name, True, "cli:test", "stock-out")
    for day in (1, 2):
        assert stages.allocate(brief, ledger, ledger.store, meta, DAY + timedelta(days=day), ACTOR).empty
        assert stages.publish(brief, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR) == []
        assert {sandbox.objects[a]["status"] for a in ads["ad_id"]} == {"PAUSED"}
        assert {sandbox.objects[a]["status"] for a in ads["adset_id"]} == {"PAUSED"}
        assert all(int(sandbox.objects[a]["daily_budget"]) <= budgets[a] for a in ads["adset_id"])
    days = ledger.days(brief.name)
    assert days["paused"].tolist() == [False, True, True]  # paused days do not count towards the generation
    ledger.set_paused(brief.name, False, "cli:test", "back in stock")
    stages.allocate(brief, ledger, ledger.store, meta, DAY + timedelta(days=3), ACTOR)
    assert {sandbox.objects[a]["status"] for a in ads["ad_id"]} == {"ACTIVE"}
    actions = ledger.actions(brief.name)
    assert [a for a in actions["action"] if a in ("pause", "resume")] == ["pause", "resume"]
    assert actions.set_index("action").loc["pause", "reason"] == "stock-out"


def test_two_briefs_in_one_ledger_never_touch_each_others_ads(world, tmp_path):
    make, sandbox = world
    first, ledger = make()
    second_brief = first.model_copy(update={"name": "second-brief"})
    rows = ledger.live(first.name, 0)[["variant_id", "template", "colour", "aspect", "profile"]]
    ledger.start_generation(second_brief.name, 0, rows, [], opened_on=DAY)  # the same pictures, another brief
    for vid in rows["variant_id"]:
        ledger.set_render(vid, "rendered", str(tmp_path / "renders" / vid))
    meta = meta_client(first, sandbox)
    stages.publish(first, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR)
    stages.publish(second_brief, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR)
    mine, theirs = ledger.publications(first.name, "meta"), ledger.publications(second_brief.name, "meta")
    assert len(mine) == len(theirs) == 4 and not set(mine["ad_id"]) & set(theirs["ad_id"])
    ledger.set_paused(second_brief.name, True, "cli:test")
    sandbox.requests.clear()
    stages.allocate(first, ledger, ledger.store, meta, DAY, ACTOR)
    touched = {r["path"].rstrip("/").split("/")[-1] for r in sandbox.requests}
    assert touched & set(mine["ad_id"]) and not touched & (set(theirs["ad_id"]) | set(theirs["adset_id"]))
    assert {sandbox.objects[a]["status"] for a in theirs["ad_id"]} == {"PAUSED"}


def test_the_campaign_spend_cap_from_the_brief_stops_delivery_whatever_the_ad_set_budgets(world, tmp_path):
    make, sandbox = world
    brief, ledger = make(**{"meta.campaign_spend_cap": 20.0})
    meta = meta_client(brief, sandbox)
    stages.publish(brief, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR)
    assert sandbox.objects[brief.meta.campaign_id]["spend_cap"] == "2000"
    stages.allocate(brief, ledger, ledger.store, meta, DAY, ACTOR)
    spent = []
    for _ in range(6):
        sandbox.advance(1)
        spent.append(sum(m["spend"] for m in sandbox.daily.values()))
    assert spent[-1] == spent[-2] > 0  # delivery stopped once the cap was reached
    assert spent[-1] <= 20.0 + 400.0  # at most one day's budget past the cap, as on Meta


def test_closing_a_run_pauses_every_ad_even_one_whose_last_budget_was_nothing(world, tmp_path):
    make, sandbox = world
    brief, ledger = make()
    meta = meta_client(brief, sandbox)
    stages.publish(brief, ledger, meta, FolderStore(tmp_path / "renders"), ACTOR)
    stages.allocate(brief, ledger, ledger.store, meta, DAY, ACTOR)
    ledger.set_status(brief.name, "vst0", "meta", "ACTIVE", daily_budget_cents=0)  # out of the live set
    budgets = {o["id"]: o["daily_budget"] for o in sandbox.objects.values() if o["type"] == "adset"}
    stages.allocate(brief, ledger, ledger.store, meta, DAY + timedelta(days=1), ACTOR, final=True)
    objects = [o for o in sandbox.objects.values() if o["type"] in ("ad", "adset")]
    assert {o["status"] for o in objects} == {"PAUSED"}
    assert {o["id"]: o["daily_budget"] for o in objects if o["type"] == "adset"} == budgets  # none raised


def glb_extent(path):
    """The model's size along x, y, z as its GLB's POSITION accessors state it (glTF is Y-up, in metres)."""
    import struct

    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[12:16])
    doc = json.loads(data[20 : 20 + length])
    lo = [min(a["min"][i] for a in doc["accessors"] if a.get("type") == "VEC3" and "min" in a) for i in range(3)]
    hi = [max(a["max"][i] for a in doc["accessors"] if a.get("type") == "VEC3" and "max" in a) for i in range(3)]
    return [h - low for h, low in zip(hi, lo)], doc


def test_the_products_3d_model_goes_on_its_page_upright_and_real_size_once(world, tmp_path):
    make, _ = world
    lying_bottle_obj(tmp_path / "bottle.obj")  # 26 units long, lying along +X: an OBJ says nothing of units
    brief, ledger = make(**{"shopify.model_3d": True, "product.model": str(tmp_path / "bottle.obj"),
                            "product.height_m": 0.26})  # fmt: skip
    with ShopifySandbox("shpat_stage_token_1234", "secret-1234567890") as shop:
        admin = ShopifyAdmin(brief.shopify.shop, "shpat_stage_token_1234", shop.url, poll_s=0.0)
        done = stages.publish_model_3d(brief, ledger, admin, tmp_path / "models", ACTOR)
        again = stages.publish_model_3d(brief, ledger, admin, tmp_path / "models", ACTOR)
        (media,) = shop.products[brief.shopify.product_id]["media"]
        staged = {s["filename"]: s["bytes"] for s in shop.staged.values()}
    assert done["model_3d"] == "READY" and again is None and media["mediaContentType"] == "MODEL_3D"
    assert brief_status(ledger, brief.name)["shopify"] == {"model_3d": "READY"}
    (folder,) = (tmp_path / "models").iterdir()
    assert staged[f"autoplay-{folder.name}.glb"] == (folder / "model.glb").read_bytes()
    assert staged[f"autoplay-{folder.name}.usdz"][:4] == b"PK\x03\x04"
    (x, y, z), _ = glb_extent(folder / "model.glb")
    assert y == pytest.approx(0.26, rel=0.01) and x < 0.1 and z < 0.1  # stood up (Y is up in glTF), 26 cm tall


def test_a_3d_model_that_cannot_be_made_is_recorded_failed_and_the_renders_still_publish(world, tmp_path):
    make, _ = world
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"glTF\x02\x00\x00\x00" + bytes(12))
    brief, ledger = make(**{"shopify.model_3d": True})
    brief = brief.model_copy(update={"product": brief.product.model_copy(update={"model": broken})})
    with ShopifySandbox("shpat_stage_token_1234", "secret-1234567890") as shop:
        admin = ShopifyAdmin(brief.shopify.shop, "shpat_stage_token_1234", shop.url, poll_s=0.0)
        assert (
            len(stages.publish_shopify(brief, ledger, ledger.store, admin, FolderStore(tmp_path / "renders"), ACTOR))
            == 4
        )
        failed = stages.publish_model_3d(brief, ledger, admin, tmp_path / "models", ACTOR)
    assert failed["model_3d"] == "FAILED" and "broken.glb" in failed["error"]
    assert brief_status(ledger, brief.name)["shopify"] == {"model_3d": "FAILED"}
    assert any(r.startswith("3D model not shown: ") and "broken.glb" in r for r in ledger.actions(brief.name)["reason"])


def test_one_ad_per_variant_carries_its_render_in_every_aspect_each_in_its_own_placements(world, tmp_path, brief_file):
    _, sandbox = world
    brief = load_brief(brief_file(**{"meta.native_aspects": True, "aspects": ["1:1", "9:16"],
                                                   "templates": ["studio"], "palette": ["#E8D5C4", "#1F6FEB"],
                                                   "autoplay.live_variants": 2, "autoplay.keep_per_generation": 1,
                                                   "shopify.model_3d": False}))  # fmt: skip
    ledger = Ledger(EventStore(tmp_path / "native.duckdb"))
    plan = stages.plan(brief, ledger, ledger.store, "thumbnail", DAY, ACTOR)
    assert set(plan.live["aspect"]) == {"1:1"} and len(plan.live) == 2
    progress = []
    results = stages.render(
        ledger, plan.new_variant_ids, FolderStore(tmp_path / "renders"), ACTOR, on_result=progress.append
    )
    assert [r.variant_id for r in progress] == [r.variant_id for r in results] == plan.new_variant_ids
    assert len(list((tmp_path / "renders").glob("v*/manifest.json"))) == 4  # each variant in 1:1 and 9:16
    published = stages.publish(brief, ledger, meta_client(brief, sandbox), FolderStore(tmp_path / "renders"), ACTOR)
    assert len(published) == 2 and sum(o["type"] == "ad" for o in sandbox.objects.values()) == 2
    for pub in published:
        creative = sandbox.objects[pub["creative_id"]]
        feed = creative["asset_feed_spec"]
        assert [i["adlabels"][0]["name"] for i in feed["images"]] == ["image_1x1", "image_9x16"]
        rules = {r["image_label"]["name"]: r["customization_spec"] for r in feed["asset_customization_rules"]}
        assert rules["image_9x16"]["instagram_positions"] == ["story", "reels"]
        assert rules["image_1x1"]["facebook_positions"] == ["feed"]
        targeting = sandbox.objects[pub["adset_id"]]["targeting"]
        assert {"feed", "story", "facebook_reels"} <= set(targeting["facebook_positions"])
    hashes = {i["hash"] for p in published for i in sandbox.objects[p["creative_id"]]["asset_feed_spec"]["images"]}
    assert len(hashes) == 4 and len(sandbox.images) == 4  # four distinct renders, each uploaded once


def test_a_bundle_whose_product_file_went_away_after_the_plan_fails_naming_it_and_the_rest_render(tmp_path, brief_file):
    from tests.rendering.corpus import low_poly_can, white_box

    low_poly_can(tmp_path / "can.obj")
    white_box(tmp_path / "box.obj")
    plain = load_brief(brief_file(**{"templates": ["studio"], "aspects": ["1:1"], "palette": ["#E8D5C4", "#1F6FEB"],
                                     "autoplay.live_variants": 2, "autoplay.keep_per_generation": 1}))  # fmt: skip
    bundle = load_brief(brief_file(**{"name": "gift-set", "templates": ["bundle"], "aspects": ["1:1"],
                                      "palette": ["#E8D5C4", "#1F6FEB"], "autoplay.live_variants": 2,
                                      "autoplay.keep_per_generation": 1,
                                      "products": [{"model": "can.obj", "height_m": 0.12},
                                                   {"model": "box.obj", "height_m": 0.1}]}))  # fmt: skip
    ledger = Ledger(EventStore(tmp_path / "events.duckdb"))
    planned = [stages.plan(b, ledger, ledger.store, "thumbnail", DAY, ACTOR).new_variant_ids for b in (plain, bundle)]
    (tmp_path / "box.obj").unlink()
    with pytest.raises(RuntimeError, match=r"2 of 4 renders failed; .*box\.obj: No such file or directory"):
        stages.render(ledger, planned[0] + planned[1], FolderStore(tmp_path / "renders"), ACTOR)
    status = dict(zip(ledger.variants(plain.name)["variant_id"], ledger.variants(plain.name)["render_status"]))
    assert set(status.values()) == {"rendered"}  # the single-product variants went on
    failed = ledger.variants(bundle.name)
    assert set(failed["render_status"]) == {"failed"} and all("box.obj" in e for e in failed["render_error"])
    assert stages.pending_renders(ledger, bundle.name) == []  # not retried forever: the next plan replaces them
