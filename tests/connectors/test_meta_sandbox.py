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

pytestmark = pytest.mark.slow  # the SDKs over real HTTP against the sandboxes: the integration lane

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
    meta.set_adset(a.adset_id, 20000, active=True)
    meta.set_adset(b.adset_id, 1000, active=False)
    meta.set_ad_status(b.ad_id, active=False)
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


class RecordingSleep:
    """Stands in for time.sleep so backoff is observed, not waited for."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def patient_client(sandbox, sleep, timeout=5.0, **backoff):
    from connectors.retry import Backoff

    return MetaAds(
        TOKEN, "act_42", page_id="7", campaign_id=sandbox.campaign_id, graph_url=sandbox.url, timeout=timeout,
        backoff=Backoff(sleep=sleep, **backoff),
    )  # fmt: skip


def counts(sandbox) -> dict[str, int]:
    kinds = [o["type"] for o in sandbox.objects.values()]
    return {k: kinds.count(k) for k in ("creative", "adset", "ad")} | {"image": len(sandbox.images)}


@pytest.mark.parametrize("fault", ["throttle", "account_throttle", "transient", "html_502", "non_json"])
def test_throttling_and_transient_failures_are_retried_with_backoff_and_publish_once(sandbox, image, fault):
    sleep = RecordingSleep()
    sandbox.inject(fault, times=2, match="/ads", method="POST")
    publication = patient_client(sandbox, sleep).publish(creative(image), 1000)
    assert publication.ad_id in sandbox.objects
    assert counts(sandbox) == {"creative": 1, "adset": 1, "ad": 1, "image": 1}
    assert len(sleep.waits) == 2 and all(0 <= w <= 60 for w in sleep.waits)


def test_a_throttle_waits_at_least_as_long_as_the_usage_headers_say(sandbox, image):
    sleep = RecordingSleep()
    sandbox.inject("throttle", times=1, match="/adimages", regain_minutes=2)
    patient_client(sandbox, sleep).publish(creative(image), 1000)
    assert len(sleep.waits) == 1 and 120 <= sleep.waits[0] <= 121  # 2 minutes, plus at most 1 s of jitter


def test_a_throttle_longer_than_we_wait_is_reported_with_its_duration(sandbox, image):
    from connectors.meta import MetaThrottled

    sleep = RecordingSleep()
    sandbox.inject("account_throttle", times=1, match="/adimages", method="POST", regain_minutes=90)
    with pytest.raises(MetaThrottled, match="image upload for vabc throttled.*in 90 min") as err:
        patient_client(sandbox, sleep, max_wait_s=900).publish(creative(image), 1000)
    assert err.value.wait_s == 5400 and sleep.waits == [] and counts(sandbox)["ad"] == 0


@pytest.mark.parametrize(
    "fault, reason", [("html_502", "HTTP 502 with a non-JSON body"), ("non_json", "HTTP 200 with")]
)
def test_an_html_error_page_or_a_non_json_body_is_never_a_success(sandbox, image, fault, reason):
    sleep = RecordingSleep()
    sandbox.inject(fault, times=100, match="/adcreatives")
    with pytest.raises(MetaError, match=f"creative create for vabc failed after 3 attempts: {reason}"):
        patient_client(sandbox, sleep, max_attempts=3).publish(creative(image), 1000)
    assert counts(sandbox)["creative"] == 0 and counts(sandbox)["ad"] == 0


def test_a_create_whose_answer_times_out_is_found_on_retry_not_made_twice(sandbox, image):
    sleep = RecordingSleep()
    sandbox.slow_response_s = 2.0
    sandbox.inject("timeout", times=1, match="/ads", method="POST")  # Meta creates the ad, the answer is lost
    publication = patient_client(sandbox, sleep, timeout=0.5).publish(creative(image), 1000)
    assert len(sleep.waits) == 1
    assert counts(sandbox)["ad"] == 1 and publication.ad_id in sandbox.objects


def test_a_request_error_is_not_retried(sandbox, image):
    sleep = RecordingSleep()
    client = patient_client(sandbox, sleep)
    with pytest.raises(MetaError, match="code 190"):
        MetaAds("wrong", "act_42", page_id="7", campaign_id=sandbox.campaign_id, graph_url=sandbox.url,
                backoff=client.backoff).insights(date(2026, 11, 1), date(2026, 11, 1))  # fmt: skip
    assert sleep.waits == []


def test_pause_all_pauses_every_published_ad_and_ad_set_and_nothing_else(sandbox, image):
    meta = client(sandbox)
    published = [meta.publish(creative(image, variant=f"v{i}"), 1000, activate=True) for i in range(3)]
    other = sandbox._new("ad", {"name": "hand-made ad", "status": "ACTIVE", "adset_id": published[0].adset_id})
    paused = meta.pause_all("launch")
    assert sorted(paused) == sorted(p.ad_id for p in published)
    for p in published:
        assert sandbox.objects[p.ad_id]["status"] == "PAUSED" and sandbox.objects[p.adset_id]["status"] == "PAUSED"
    assert sandbox.objects[other["id"]]["status"] == "ACTIVE"


def test_the_token_appears_in_no_log_and_no_error_during_a_publish_with_faults(sandbox, image, caplog):
    caplog.set_level(logging.DEBUG)
    sleep = RecordingSleep()
    sandbox.inject("throttle", times=1, match="/adimages")
    sandbox.inject("html_502", times=1, match="/ads")
    meta = patient_client(sandbox, sleep)
    meta.publish(creative(image), 1000)
    sandbox.inject("transient", times=5, match="/insights")
    with pytest.raises(MetaError) as err:
        patient_client(sandbox, sleep, max_attempts=2).insights(date(2026, 11, 1), date(2026, 11, 2))
    assert caplog.records, "the retries were logged"
    assert TOKEN not in caplog.text and TOKEN not in str(err.value) and TOKEN not in repr(err.value)


def test_pause_all_command_pauses_the_briefs_ads_against_a_configured_sandbox(sandbox, image, brief_file, monkeypatch):
    from typer.testing import CliRunner

    from pipelines.cli import app

    meta = MetaAds(TOKEN, "act_42", page_id="7", campaign_id=sandbox.campaign_id, graph_url=sandbox.url)
    published = meta.publish(CreativeToPublish("v1", "waterbottle-launch", image, "https://x.example", "m"), 900, True)
    path = brief_file(**{"meta.account_id": "act_42"})
    monkeypatch.setenv("AUTOPLAY_HOME", str(path.parent / "home"))
    monkeypatch.setenv("META_GRAPH_URL", sandbox.url)
    monkeypatch.setenv("META_ACCESS_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["pause-all", "--brief", str(path)])
    assert result.exit_code == 0, result.output
    assert "paused 1 ads" in result.output and TOKEN not in result.output
    assert sandbox.objects[published.ad_id]["status"] == "PAUSED"
    monkeypatch.delenv("META_ACCESS_TOKEN")
    result = CliRunner().invoke(app, ["pause-all", "--brief", str(path)])
    assert result.exit_code == 2 and "META_ACCESS_TOKEN is not set" in result.output
