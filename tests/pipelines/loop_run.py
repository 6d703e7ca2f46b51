"""The loop run the slow pipeline tests share: two briefs of two brands, three generations each, through
Dagster's daemon on the embedded broker and sandboxes, with the second brief paused for two days. The second
brief's product is one the renderer was not built around: the test corpus's watch, lying flat on its strap."""

import pytest
import yaml

from experiments.market import SimulatedMarket
from pipelines.demo import run_demo
from pipelines.settings import load_settings
from tests.conftest import EXAMPLE_BRIEF, WATERBOTTLE
from tests.rendering.corpus import watch

EASY_BRIEF = {
    "templates": ["studio", "podium"],
    "palette": ["#1F6FEB", "#E8D5C4"],
    "aspects": ["1:1"],
    "autoplay": {
        "live_variants": 4,
        "keep_per_generation": 3,
        "days_per_generation": 2,
        "activate": True,
        "exploration_floor": 0.03,
        "min_impressions": 1000,
    },
}
# one clearly best variant (podium on #1F6FEB), two middling, one poor
EASY_MARKET = {"effect_scale": 0.0, "boosts": {("template", "podium"): 0.6, ("colour", "#1F6FEB"): 0.6}}
GENERATIONS = 3
OTHER = "second-product"  # a second brief in another ad account, on another Shopify product
PAUSED_ON, RESUMED_ON = "2026-11-03", "2026-11-05"


class PausingReporter:
    """Pauses the second brief for two days, as a marketer would from the CLI, and records what the
    sandbox's ads of each brief looked like on each day and the budgets of each account."""

    def __init__(self, settings):
        self.settings, self.running, self.days = settings, None, {}

    def started(self, running):
        self.running = running

    def run_changed(self, *args): ...

    def renders(self, *args): ...

    def day(self, today):
        from connectors.event_store import EventStore
        from connectors.ledger import Ledger

        ledger = Ledger(EventStore(self.settings.event_store_path))
        meta = self.running.sandboxes.meta
        with meta.lock:
            ads = [o for o in meta.objects.values() if o["type"] == "ad"]
            adsets = {o["id"]: o for o in meta.objects.values() if o["type"] == "adset"}
            self.days[today] = {
                "other_ads": {a["status"] for a in ads if f"|{OTHER}|" in a["name"]},
                "spend_cents": {
                    acct: sum(int(s["daily_budget"]) for s in adsets.values()
                              if s["account_id"] == acct and s["status"] == "ACTIVE")
                    for acct in {s["account_id"] for s in adsets.values()}
                },
            }  # fmt: skip
        if today == PAUSED_ON:
            ledger.set_paused(OTHER, True, "cli:test", "a marketer pauses it")
        if today == RESUMED_ON:
            ledger.set_paused(OTHER, False, "cli:test", "a marketer resumes it")


@pytest.fixture(scope="session")
def loop_run(tmp_path_factory, broker):
    root = tmp_path_factory.mktemp("loop")
    catalog = root / "briefs"
    first = yaml.safe_load(EXAMPLE_BRIEF.read_text()) | EASY_BRIEF
    first["product"]["model"] = str(WATERBOTTLE)
    second = {**first, "name": OTHER, "brand": "Other Co"}
    second["meta"] = {**first["meta"], "account_id": "act_2000000000001", "campaign_id": "220000000000001"}
    second["shopify"] = {**first["shopify"], "product_id": "gid://shopify/Product/8000000000002", "model_3d": False}
    second["product"] = {**first["product"], "model": "watch.obj"}
    second["templates"] = [*first["templates"], "winter-holidays"]
    # it runs turntables too, short ones: 4 frames at thumbnail size
    second["autoplay"] = {**first["autoplay"], "kinds": ["still", "turntable"], "turntable_seconds": 0.5,
                          "turntable_fps": 8}  # fmt: skip  # its season starts 11-20: after this run
    for brief in (first, second):
        (catalog / brief["name"]).mkdir(parents=True)
        (catalog / brief["name"] / "brief.yaml").write_text(yaml.safe_dump(brief))
    watch(catalog / OTHER / "watch.obj")
    env = {
        "AUTOPLAY_HOME": str(root / "home"),
        "AUTOPLAY_BRIEFS": str(catalog),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "AUTOPLAY_EVENTS_TOPIC": "loop-events",
        "AUTOPLAY_DEAD_LETTER_TOPIC": "loop-events.dead",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "AUTOPLAY_RENDER_PROFILE": "thumbnail",
        "AUTOPLAY_SEED": "11",
    }
    settings = load_settings(env)
    reporter = PausingReporter(settings)
    run = run_demo(settings, GENERATIONS, market=SimulatedMarket(seed=11, **EASY_MARKET), reporter=reporter)
    return settings, run, reporter
