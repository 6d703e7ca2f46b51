"""The official facebook-business SDK over real HTTP against the sandbox Graph API."""

import json
import logging
import urllib.request
from datetime import date

import pytest

from connectors.meta import CreativeToPublish, MetaAds, MetaError, variant_from_name
from connectors.sandbox.meta_graph import MetaGraphSandbox
from experiments.market import SimulatedMarket
from tests.conftest import WATERBOTTLE  # noqa: F401  (keeps the shared fixtures importable)

TOKEN = "sandbox-secret-token-4b1d"


@pytest.fixture
def sandbox():
    with MetaGraphSandbox(SimulatedMarket(seed=3), access_token=TOKEN, account_id="act_42", page_size=3) as sb:
        yield sb


@pytest.fixture
def image(tmp_path):
    from PIL import Image

    path = tmp_path / "still.png"
    Image.new("RGB", (64, 64), "#1F6FEB").save(path)
    return path


def creative(image, variant="vabc", colour="#1F6FEB"):
    return CreativeToPublish(
        variant,
        "launch",
        image,
        "https://shop.example.com/p",
        "Buy it",
        {"template": "studio", "colour": colour, "aspect": "1:1"},
    )


def client(sandbox, token=TOKEN):
    return MetaAds(token, "act_42", page_id="7", campaign_id=sandbox.campaign_id, graph_url=sandbox.url, timeout=5)


def test_publish_creates_image_creative_ad_set_and_paused_ad(sandbox, image):
    pub = client(sandbox).publish(creative(image), daily_budget_cents=1500)
    ad = sandbox.objects[pub.ad_id]
    assert ad["status"] == "PAUSED" and ad["name"] == "autoplay|launch|vabc"
    assert variant_from_name(ad["name"]) == "vabc"
    spec = sandbox.objects[pub.creative_id]
    assert spec["object_story_spec"]["link_data"]["image_hash"] == pub.image_hash
    assert "utm_content=vabc" in spec["url_tags"] and "{{ad.id}}" in spec["url_tags"]
    assert sandbox.objects[pub.adset_id]["daily_budget"] == "1500"


def test_publishing_twice_reuses_what_exists(sandbox, image):
    meta = client(sandbox)
    first = meta.publish(creative(image), 1500, activate=True)
    second = meta.publish(creative(image), 1500, activate=True)
    assert first == second
    kinds = [o["type"] for o in sandbox.objects.values()]
    assert kinds.count("ad") == 1 and kinds.count("creative") == 1 and kinds.count("adset") == 1


def test_insights_are_paged_and_numbers_parsed(sandbox, image):
    meta = client(sandbox)
    pubs = [
        meta.publish(creative(image, f"v{i}", c), 5000, activate=True) for i, c in enumerate(["#111111", "#EEEEEE"])
    ]
    sandbox.advance(3)
    rows = meta.insights(date(2026, 11, 1), date(2026, 11, 3))
    assert len(rows) == 6  # 2 ads x 3 days, over pages of 3
    assert {r["ad_id"] for r in rows} == {p.ad_id for p in pubs}
    assert all(isinstance(r["impressions"], float) and r["impressions"] > 1000 for r in rows)
    assert all(0 <= r["clicks"] <= r["impressions"] for r in rows)


def test_delivery_follows_budget_and_status(sandbox, image):
    meta = client(sandbox)
    a, b = (meta.publish(creative(image, v, c), 1000, activate=True) for v, c in [("va", "#111111"), ("vb", "#EEEEEE")])
    meta.set_delivery(a.adset_id, a.ad_id, 20000, True)
    meta.set_delivery(b.adset_id, b.ad_id, 1000, False)
    sandbox.advance(1)
    rows = {r["ad_id"]: r for r in meta.insights(date(2026, 11, 1), date(2026, 11, 1))}
    assert rows[a.ad_id]["impressions"] > 1000 and b.ad_id not in rows


def test_errors_name_the_request_and_never_the_token(sandbox, image, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(MetaError) as err:
        client(sandbox, token="wrong-" + TOKEN).insights(date(2026, 11, 1), date(2026, 11, 1))
    assert "insights read failed" in str(err.value) and "code 190" in str(err.value)
    assert TOKEN not in str(err.value) and TOKEN not in caplog.text


def test_sandbox_truth_is_outside_the_graph_api(sandbox, image):
    client(sandbox).publish(creative(image), 1000, activate=True)
    with urllib.request.urlopen(f"{sandbox.url}/sandbox/truth") as resp:
        truth = json.load(resp)
    assert all(0 < t["true_ctr"] < 1 for t in truth.values())
