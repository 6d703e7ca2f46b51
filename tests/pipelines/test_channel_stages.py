"""The loop's channel stages against the sandboxes: review retiring a disapproved variant, allocation over
the ad sets a brief names, and Shopify publication featuring the leader."""

import json

import pandas as pd
import pytest
from PIL import Image

from connectors.event_store import EventStore
from connectors.ledger import Ledger
from connectors.meta import MetaAds
from connectors.retry import Backoff
from connectors.sandbox.meta_graph import MetaGraphSandbox
from connectors.sandbox.shopify_admin import ShopifySandbox
from connectors.shopify import ShopifyAdmin
from experiments.brief import load_brief
from experiments.market import SimulatedMarket
from pipelines import stages

TOKEN = "stage-test-token-3f9a7c"
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
            folder = tmp_path / "renders" / f"vst{i}"
            folder.mkdir(parents=True)
            Image.new("RGB", (64, 64), colour).save(folder / "still.jpg")
            (folder / "manifest.json").write_text(json.dumps({"files": {"jpeg": "still.jpg"}}))
            rows.append({"variant_id": f"vst{i}", "template": "studio", "colour": colour,
                         "aspect": "9:16" if i % 2 else "1:1", "profile": "preview"})  # fmt: skip
        ledger.start_generation(brief.name, 0, pd.DataFrame(rows), [])
        for r in rows:
            ledger.set_render(r["variant_id"], "rendered", str(tmp_path / "renders" / r["variant_id"]))
        return brief, ledger

    with MetaGraphSandbox(SimulatedMarket(), TOKEN, "act_1000000000001", campaign_id="120000000000001") as sandbox:
        yield make, sandbox


def meta_client(brief, sandbox):
    return MetaAds(TOKEN, brief.meta.account_id, brief.meta.page_id, brief.meta.campaign_id, graph_url=sandbox.url,
                   ad_sets=dict(brief.meta.ad_sets), backoff=Backoff(sleep=lambda s: None))  # fmt: skip


def test_a_disapproved_ad_is_paused_and_its_variant_retired_and_never_allocated(world):
    make, sandbox = world
    brief, ledger = make()
    sandbox.inject("disapprove", match="|vst2")
    meta = meta_client(brief, sandbox)
    stages.publish(brief, ledger, meta)
    assert {r.effective_status for r in stages.review(brief, ledger, meta)} == {"PENDING_REVIEW"}
    reviews = {r.variant_id: r for r in stages.review(brief, ledger, meta)}
    assert reviews["vst2"].disapproved and not reviews["vst1"].disapproved
    retired = ledger.variant("vst2")["retired_reason"]
    assert retired.startswith("Meta disapproved ad") and "before-and-after" in retired
    decisions = ledger.decisions(brief.name)
    assert decisions[decisions["kind"] == "retire"]["variant_id"].tolist() == ["vst2"]
    shares = stages.allocate(brief, ledger, ledger.store, meta, pd.Timestamp("2026-11-01").date())
    assert "vst2" not in shares.index and len(shares) == 3
    ad = sandbox.objects[ledger.publications("meta").set_index("variant_id").loc["vst2", "ad_id"]]
    assert ad["status"] == "PAUSED" and ad["effective_status"] == "DISAPPROVED"
    assert stages.review(brief, ledger, meta) and ledger.variant("vst2")["retired_reason"] == retired


def test_allocation_sets_the_named_ad_sets_budgets_to_the_sum_of_their_variants(world):
    make, sandbox = world
    feed = sandbox._new("adset", {"name": "feed", "campaign_id": "120000000000001", "daily_budget": "100",
                                  "status": "PAUSED"})  # fmt: skip
    vertical = sandbox._new("adset", {"name": "stories", "campaign_id": "120000000000001", "daily_budget": "100",
                                      "status": "PAUSED"})  # fmt: skip
    brief, ledger = make(**{"meta.ad_sets": {"feed": feed["id"], "vertical": vertical["id"]}})
    meta = meta_client(brief, sandbox)
    published = stages.publish(brief, ledger, meta)
    assert {p["adset_id"] for p in published} == {feed["id"], vertical["id"]}
    assert sum(o["type"] == "adset" for o in sandbox.objects.values()) == 2  # no ad set of their own
    stages.allocate(brief, ledger, ledger.store, meta, pd.Timestamp("2026-11-01").date())
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
        first = stages.publish_shopify(brief, ledger, ledger.store, admin)
        again = stages.publish_shopify(brief, ledger, ledger.store, admin)
        media = shop.products[brief.shopify.product_id]["media"]
    assert len(first) == 4 and again == [] and len(media) == 4
    assert all(m["status"] == "READY" for m in media)
    assert all(m["alt"].startswith("Aqua Co product in a studio scene on a #") for m in media)
