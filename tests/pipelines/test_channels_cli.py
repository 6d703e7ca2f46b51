"""`autoplay publish` and `autoplay pause-all` as a user runs them, against sandboxes over real HTTP, and
secrets coming from a secrets file."""

import pytest
from typer.testing import CliRunner

from connectors.sandbox.meta_graph import MetaGraphSandbox
from connectors.sandbox.shopify_admin import ShopifySandbox
from experiments.market import SimulatedMarket
from pipelines.cli import app
from pipelines.settings import SecretsFileError, load_secrets, load_settings
from tests.conftest import rendered_folder

pytestmark = pytest.mark.slow  # the SDKs over real HTTP against the sandboxes: the integration lane

META_TOKEN = "meta-sandbox-token-5e8f1a"
SHOP_TOKEN = "shpat_sandbox_token_77c1d2"


def variant_dir(root, variant_id, aspect="1:1", colour="#1F6FEB"):
    return rendered_folder(root / variant_id, colour, aspect)


@pytest.fixture
def configured(tmp_path, brief_file, monkeypatch):
    """Sandboxes reached as configured accounts: tokens and base URLs from the environment."""
    path = brief_file()
    with (
        MetaGraphSandbox(SimulatedMarket(), META_TOKEN, "act_1000000000001", campaign_id="120000000000001") as meta,
        ShopifySandbox(SHOP_TOKEN, "app-secret-0123456789") as shop,
    ):
        monkeypatch.setenv("AUTOPLAY_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("META_GRAPH_URL", meta.url)
        monkeypatch.setenv("META_ACCESS_TOKEN", META_TOKEN)
        monkeypatch.setenv("SHOPIFY_ADMIN_URL", shop.url)
        monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", SHOP_TOKEN)
        yield path, meta, shop


def test_publish_to_meta_twice_creates_once_then_pause_all_pauses_it(configured, tmp_path):
    brief, meta, _ = configured
    square, vertical = variant_dir(tmp_path, "vcli1"), variant_dir(tmp_path, "vcli2", "9:16", "#2E7D32")
    args = ["publish", str(square), str(vertical), "--channel", "meta", "--activate", "--brief", str(brief)]
    for _ in range(2):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "ACTIVE" in result.output and META_TOKEN not in result.output
    ads = [o for o in meta.objects.values() if o["type"] == "ad"]
    assert len(ads) == 2 and {a["status"] for a in ads} == {"ACTIVE"}
    adsets = {o["name"]: o for o in meta.objects.values() if o["type"] == "adset"}
    assert adsets["autoplay|waterbottle-launch|vcli2"]["targeting"]["instagram_positions"] == ["story", "reels"]
    result = CliRunner().invoke(app, ["pause-all", "--brief", str(brief)])
    assert result.exit_code == 0 and "paused 2 ads" in result.output
    assert {o["status"] for o in meta.objects.values() if o["type"] == "ad"} == {"PAUSED"}


def test_publish_to_shopify_attaches_and_features_the_render(configured, tmp_path):
    brief, _, shop = configured
    folder = variant_dir(tmp_path, "vcli3", colour="#F4C430")
    result = CliRunner().invoke(
        app, ["publish", str(folder), "--channel", "shopify", "--feature", "--brief", str(brief)]
    )
    assert result.exit_code == 0, result.output
    media = shop.products["gid://shopify/Product/8000000000001"]["media"]
    assert len(media) == 1 and media[0]["status"] == "READY" and "[vcli3]" in media[0]["alt"]
    assert SHOP_TOKEN not in result.output


def test_publish_without_any_account_uses_a_temporary_sandbox(tmp_path, brief_file, monkeypatch):
    for name in ("META_ACCESS_TOKEN", "META_GRAPH_URL", "SHOPIFY_ACCESS_TOKEN", "SHOPIFY_ADMIN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTOPLAY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    folder = variant_dir(tmp_path, "vcli4")
    result = CliRunner().invoke(app, ["publish", str(folder), "--channel", "meta", "--brief", str(brief_file())])
    assert result.exit_code == 0, result.output
    assert "temporary sandbox" in result.output and "PAUSED" in result.output


def test_bad_variant_folders_and_channels_are_named(tmp_path, brief_file):
    brief = str(brief_file())
    result = CliRunner().invoke(app, ["publish", str(tmp_path / "nope"), "--channel", "meta", "--brief", brief])
    assert result.exit_code == 2 and "nope: no manifest.json" in result.output
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{}")
    result = CliRunner().invoke(app, ["publish", str(tmp_path / "broken"), "--channel", "meta", "--brief", brief])
    assert result.exit_code == 2 and "broken/manifest.json: not a render manifest" in result.output
    result = CliRunner().invoke(app, ["publish", str(tmp_path), "--channel", "tiktok", "--brief", brief])
    assert result.exit_code == 2 and "--channel 'tiktok'" in result.output


def test_secrets_come_from_the_secrets_file_and_the_environment_wins(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.env"
    secrets.write_text(
        "# production tokens\nexport META_ACCESS_TOKEN='from-file-123456'\nSHOPIFY_API_SECRET=s3cr3t-value\n"
    )
    env = {"AUTOPLAY_SECRETS_FILE": str(secrets), "SHOPIFY_API_SECRET": "from-env-abcdef"}
    assert load_secrets(env) == secrets
    assert env["META_ACCESS_TOKEN"] == "from-file-123456" and env["SHOPIFY_API_SECRET"] == "from-env-abcdef"
    secrets.write_text("META_ACCESS_TOKEN=ok\nthis line has no equals sign\n")
    with pytest.raises(SecretsFileError, match=r"secrets.env:2: expected NAME=value") as err:
        load_secrets({"AUTOPLAY_SECRETS_FILE": str(secrets)})
    assert "equals" not in str(err.value)  # the line's content (maybe a secret) is not repeated
    with pytest.raises(SecretsFileError, match="no such file"):
        load_secrets({"AUTOPLAY_SECRETS_FILE": str(tmp_path / "missing.env")})
    monkeypatch.setenv("AUTOPLAY_SECRETS_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(SecretsFileError):
        load_settings()


@pytest.mark.slow
def test_four_concurrent_publishes_of_the_same_variants_create_exactly_one_of_each(configured, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    brief, meta, _ = configured
    dirs = [str(variant_dir(tmp_path, "vcc1")), str(variant_dir(tmp_path, "vcc2", "9:16", "#2E7D32"))]
    meta.latency_s = 0.2  # answers come late, so the publishes overlap
    autoplay = str(Path(sys.executable).parent / "autoplay")
    procs = [
        subprocess.Popen([autoplay, "publish", *dirs, "--channel", "meta", "--brief", str(brief)],
                         env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    kinds = [o["type"] for o in meta.objects.values()]
    assert (kinds.count("ad"), kinds.count("adset"), kinds.count("creative")) == (2, 2, 2)


def test_a_daily_budget_above_the_cap_or_below_zero_is_refused_before_any_request(configured, tmp_path):
    brief, meta, _ = configured
    folder = str(variant_dir(tmp_path, "vcap"))
    for budget in ("250000", "-5", "0", "nan", "inf"):
        args = ["publish", folder, "--channel", "meta", "--activate", "--daily-budget", budget, "--brief", str(brief)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "daily cap of 600" in result.output, (budget, result.output)
    assert [o for o in meta.objects.values() if o["type"] in ("ad", "adset")] == []


def test_config_never_prints_the_password_inside_a_uri(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:hunter2-Secret@db.internal:5432/mlflow")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.internal:9093")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "hunter2-Secret" not in result.output and "mlflow:***@db.internal" in result.output
