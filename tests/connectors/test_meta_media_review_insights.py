"""Meta over real HTTP against the sandbox: video uploads, placements per aspect, review, async insights,
restated numbers, and a publish killed midway. The facebook-business SDK makes every request."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from connectors.event_store import EventStore
from connectors.events import snapshots_from_insights
from connectors.kafka_broker import ensure_topics
from connectors.kafka_events import EventIngestor, EventProducer
from connectors.meta import Asset, CreativeToPublish, MetaAds, MetaError
from connectors.retry import Backoff
from connectors.sandbox.meta_graph import MetaGraphSandbox
from experiments.market import SimulatedMarket
from tests.conftest import REPO, rendered_folder

pytestmark = pytest.mark.slow  # the SDKs over real HTTP against the sandboxes: the integration lane

TOKEN = "sandbox-secret-token-9c2e"


@pytest.fixture
def sandbox():
    with MetaGraphSandbox(SimulatedMarket(seed=5), access_token=TOKEN, account_id="act_42", page_size=4) as sb:
        yield sb


def still(tmp_path, colour="#1F6FEB", size=(64, 64), name="still.jpg"):
    path = tmp_path / name
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture(scope="module")
def turntable(tmp_path_factory):
    """A real H.264 MP4 of about 100 KB, so the upload takes several chunks."""
    path = tmp_path_factory.mktemp("video") / "turntable.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x568:rate=24",
         "-t", "2", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-crf", "10", str(path)],
        check=True,
    )  # fmt: skip
    return path


def client(sandbox, sleep=None, **kw):
    return MetaAds(
        TOKEN, "act_42", page_id="7", campaign_id=sandbox.campaign_id, graph_url=sandbox.url, timeout=5,
        backoff=Backoff(sleep=sleep or (lambda s: None)), video_poll_s=0, report_poll_s=0, **kw,
    )  # fmt: skip


def creative(image, variant="vabc", aspect="1:1", **kw):
    factors = {"template": "studio", "colour": "#1F6FEB", "aspect": aspect}
    return CreativeToPublish(variant, "launch", image, "https://shop.example.com/p", "Buy", factors, aspect, **kw)


def test_a_turntable_is_uploaded_in_chunks_encoded_and_run_as_video_data(sandbox, tmp_path, turntable):
    sandbox.video_chunk_bytes = 8 * 1024
    poster = still(tmp_path, size=(72, 128))
    pub = client(sandbox).publish(creative(poster, aspect="9:16", video_path=turntable), 1000)
    video = sandbox.objects[pub.video_id]
    assert video["type"] == "video" and video["status"]["video_status"] == "ready"
    assert video["title"] == "autoplay-vabc-9x16.mp4"
    upload = next(iter(sandbox.uploads.values()))
    assert bytes(upload["data"]) == turntable.read_bytes() and len(upload["data"]) > 3 * 8 * 1024
    data = sandbox.objects[pub.creative_id]["object_story_spec"]["video_data"]
    assert data["video_id"] == pub.video_id and data["image_hash"] == pub.image_hash
    # a vertical render runs in stories and reels only
    targeting = sandbox.objects[pub.adset_id]["targeting"]
    assert targeting["facebook_positions"] == ["story", "facebook_reels"]
    assert targeting["instagram_positions"] == ["story", "reels"]
    again = client(sandbox).publish(creative(poster, aspect="9:16", video_path=turntable), 1000)
    assert again == pub and len(sandbox.uploads) == 1  # the video was found by its title, not sent again


def test_a_video_meta_cannot_encode_is_an_error_naming_the_variant(sandbox, tmp_path, turntable):
    sandbox.inject("video_error", match="autoplay-vbad")
    with pytest.raises(MetaError, match="could not encode the video of vbad"):
        client(sandbox).publish(creative(still(tmp_path), "vbad", video_path=turntable), 1000)
    assert not [o for o in sandbox.objects.values() if o["type"] == "creative"]


def test_renders_in_several_aspects_are_shown_each_in_its_own_placements(sandbox, tmp_path):
    square, vertical = still(tmp_path, name="sq.jpg"), still(tmp_path, "#2E7D32", (72, 128), "v.jpg")
    pub = client(sandbox).publish(creative(square, alternates=(Asset("9:16", vertical),)), 1000)
    made = sandbox.objects[pub.creative_id]
    feed = made["asset_feed_spec"]
    assert {i["adlabels"][0]["name"] for i in feed["images"]} == {"image_1x1", "image_9x16"}
    rules = {r["image_label"]["name"]: r["customization_spec"] for r in feed["asset_customization_rules"]}
    assert rules["image_9x16"]["instagram_positions"] == ["story", "reels"]
    assert rules["image_1x1"]["facebook_positions"] == ["feed"]
    assert made["degrees_of_freedom_spec"]["creative_features_spec"]["standard_enhancements"] == {
        "enroll_status": "OPT_OUT"
    }
    assert len(sandbox.images) == 2


def test_the_same_image_is_never_uploaded_twice(sandbox, tmp_path):
    image = still(tmp_path)
    meta = client(sandbox)
    meta.publish(creative(image, "va"), 1000)
    uploads_before = len(sandbox.images)
    sandbox.inject("transient", times=1000, match="/adimages", method="POST")  # an upload would now fail
    meta.publish(creative(image, "vb"), 1000)
    assert len(sandbox.images) == uploads_before == 1


def test_ads_go_into_the_ad_sets_the_brief_names(sandbox, tmp_path):
    named = sandbox._new("adset", {"name": "stories", "campaign_id": sandbox.campaign_id, "daily_budget": "5000",
                                   "status": "ACTIVE"})  # fmt: skip
    pub = client(sandbox, ad_sets={"vertical": named["id"]}).publish(creative(still(tmp_path), aspect="9:16"), 1000)
    assert pub.adset_id == named["id"]
    assert [o for o in sandbox.objects.values() if o["type"] == "adset"] == [named]


def test_review_reports_disapproval_with_its_reason(sandbox, tmp_path):
    sandbox.inject("disapprove", match="|vbad")
    meta = client(sandbox)
    good = meta.publish(creative(still(tmp_path), "vgood"), 1000, activate=True)
    bad = meta.publish(creative(still(tmp_path, "#111111"), "vbad"), 1000, activate=True)
    first = {r.ad_id: r for r in meta.review([good.ad_id, bad.ad_id])}
    assert {r.effective_status for r in first.values()} == {"PENDING_REVIEW"}
    later = {r.variant_id: r for r in meta.review([good.ad_id, bad.ad_id])}
    assert later["vgood"].effective_status == "ACTIVE" and not later["vgood"].disapproved
    assert later["vbad"].disapproved and "before-and-after image" in later["vbad"].reason
    sandbox.advance(1)
    delivered = {r["ad_id"] for r in meta.insights(date(2026, 11, 1), date(2026, 11, 1))}
    assert delivered == {good.ad_id}  # a disapproved ad never delivers


def test_large_reads_go_through_an_async_report_with_the_attribution_window(sandbox, tmp_path):
    meta = client(sandbox, async_rows=3)
    pubs = [meta.publish(creative(still(tmp_path, c), f"v{i}"), 5000, True) for i, c in enumerate(["#111", "#EEE"])]
    sandbox.advance(3)
    sync = meta.insights(date(2026, 11, 1), date(2026, 11, 3))
    rows = meta.insights(date(2026, 11, 1), date(2026, 11, 3), ("1d_click",), ad_ids=[p.ad_id for p in pubs])
    assert len(sandbox.reports) == 1 and len(rows) == 6 and rows == sync
    assert next(iter(sandbox.reports.values()))["windows"] == ["1d_click"]  # the brief's window was asked for
    sandbox.inject("report_failed")
    with pytest.raises(MetaError, match=r"insights report \d+ ended as 'Job Failed'"):
        meta.insights(date(2026, 11, 1), date(2026, 11, 3), ad_ids=[p.ad_id for p in pubs])


def test_restated_insights_replace_what_the_store_holds(sandbox, tmp_path, broker):
    topic = f"meta-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap_servers, {topic: 2, f"{topic}.dead": 1})
    meta = client(sandbox)
    pub = meta.publish(creative(still(tmp_path), "vr"), 5000, activate=True)
    sandbox.advance(2)
    store = EventStore(tmp_path / "events.duckdb")
    producer = EventProducer(broker.bootstrap_servers, topic)

    def read_back() -> dict:
        rows = meta.insights(date(2026, 11, 1), date(2026, 11, 2))
        producer.send(snapshots_from_insights(rows, {pub.ad_id: "vr"}))
        EventIngestor(broker.bootstrap_servers, topic, store, f"{topic}.dead").run(idle_s=1.0)
        daily = store.variant_daily()
        return dict(zip(daily["day"].astype(str).str[:10], daily["purchases"]))

    before = read_back()
    sandbox.restate("2026-11-01", purchases=3)  # late conversions arrive for a past day
    after = read_back()
    producer.close()
    assert after["2026-11-01"] == before["2026-11-01"] + 3  # replaced by the restated figure, not summed
    assert after["2026-11-02"] == before["2026-11-02"]


PUBLISH_SCRIPT = """
import sys
from pathlib import Path
from connectors.artifacts import FolderStore
from connectors.event_store import EventStore
from connectors.ledger import Ledger
from connectors.meta import MetaAds
from creative.brief import load_brief
from pipelines import stages
home, brief_path, url, token = sys.argv[1:5]
brief = load_brief(brief_path)
meta = MetaAds(token, brief.meta.account_id, brief.meta.page_id, brief.meta.campaign_id, graph_url=url)
stages.publish(brief, Ledger(EventStore(home + "/events.duckdb")), meta, FolderStore(Path(home) / "renders"), "test")
print("published")
"""


@pytest.mark.slow
def test_a_publish_killed_midway_and_rerun_leaves_exactly_one_of_everything(sandbox, tmp_path, brief_file):
    import pandas as pd

    from connectors.ledger import Ledger
    from creative.brief import load_brief

    brief_path = brief_file(**{"meta.account_id": "act_42", "meta.campaign_id": sandbox.campaign_id})
    brief = load_brief(brief_path)
    ledger = Ledger(EventStore(tmp_path / "events.duckdb"))
    variants = []
    for i, colour in enumerate(["#E8D5C4", "#1F6FEB", "#2E7D32", "#F4C430"]):
        variant_dir = tmp_path / "renders" / f"vkill{i}"
        rendered_folder(variant_dir, colour)
        variants.append({"variant_id": f"vkill{i}", "template": "studio", "colour": colour, "aspect": "1:1",
                         "profile": "preview", "dir": str(variant_dir)})  # fmt: skip
    planned = pd.DataFrame(variants).drop(columns="dir")
    ledger.start_generation(brief.name, 0, planned, [])
    for v in variants:
        ledger.set_render(v["variant_id"], "rendered", v["dir"])
    del ledger  # the subprocess opens the DuckDB file itself

    sandbox.latency_s = 0.25  # every answer comes late, after Meta has done the work
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", PUBLISH_SCRIPT, str(tmp_path), str(brief_path), sandbox.url, TOKEN]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while sum(o["type"] == "ad" for o in sandbox.objects.values()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    while sum(o["type"] == "creative" for o in sandbox.objects.values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # the third variant's creative exists; its answer has not arrived yet
    assert proc.poll() is None, proc.communicate()[0].decode()  # still publishing when killed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    made = [o["type"] for o in sandbox.objects.values()]
    assert made.count("ad") == 2 and made.count("creative") == 3  # killed in the middle of variant 3

    sandbox.latency_s = 0.0
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    names = [o["name"] for o in sandbox.objects.values() if o["type"] in ("creative", "adset", "ad")]
    for v in variants:
        assert names.count(f"autoplay|{brief.name}|{v['variant_id']}") == 3  # one creative, ad set and ad
    assert len(sandbox.images) == 4
    published = Ledger(EventStore(Path(tmp_path) / "events.duckdb")).publications(brief.name, "meta")
    assert sorted(published["variant_id"]) == [v["variant_id"] for v in variants]
