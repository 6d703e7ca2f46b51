"""All configuration of the loop, from the environment, with defaults that work on one machine.

Production values come from the environment (or dagster_home), never from edits to code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path
    briefs_dir: Path
    dagster_home: Path
    kafka_bootstrap_servers: str | None
    events_topic: str
    dead_letter_topic: str
    meta_graph_url: str | None
    meta_graph_video_url: str | None
    shopify_admin_url: str | None
    ingest_host: str
    ingest_port: int
    mlflow_tracking_uri: str
    mlflow_experiment: str
    mlflow_artifact_location: str | None
    render_profile: str
    render_max_jobs: int
    ingest_lag_threshold: int
    ingest_interval_s: float
    sandbox_clock_url: str | None
    max_generations: int | None
    seed: int

    @property
    def event_store_path(self) -> Path:
        return self.home / "events.duckdb"

    @property
    def lock_path(self) -> Path:
        return self.home / "autoplay.lock"

    @property
    def renders_dir(self) -> Path:
        return self.home / "renders"

    @property
    def sheets_dir(self) -> Path:
        return self.home / "contact_sheets"


def _local_artifacts(tracking_uri: str) -> str | None:
    """A SQLite store keeps artifacts in ``mlartifacts`` beside its file (MLflow's own default is ./mlruns
    under whatever directory the process runs in); a tracking server decides for itself."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


#: Secrets the connectors read from the environment (or the secrets file); never from code or run config.
SECRET_NAMES = ("META_ACCESS_TOKEN", "SHOPIFY_ACCESS_TOKEN", "SHOPIFY_API_SECRET", "KAFKA_SASL_PASSWORD")


class SecretsFileError(ValueError):
    """A secrets file line that is not NAME=value; the message names the file and line, never the value."""


def read_secrets_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, blank lines and ``export`` allowed), as in a .env file."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not name.strip().isidentifier():
            raise SecretsFileError(f"{path}:{number}: expected NAME=value")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def load_secrets(env: dict[str, str] | None = None) -> Path | None:
    """Fill the process environment from the secrets file (AUTOPLAY_SECRETS_FILE, else dagster_home/secrets.env)
    where a variable is not already set: the environment wins. Returns the file read, if any."""
    env = os.environ if env is None else env
    path = Path(
        env.get("AUTOPLAY_SECRETS_FILE") or Path(env.get("DAGSTER_HOME", REPO / "dagster_home")) / "secrets.env"
    )
    if not path.is_file():
        if env.get("AUTOPLAY_SECRETS_FILE"):
            raise SecretsFileError(f"AUTOPLAY_SECRETS_FILE={path}: no such file")
        return None
    for name, value in read_secrets_file(path).items():
        env.setdefault(name, value)
    return path


def load_settings(env: dict[str, str] | None = None) -> Settings:
    if env is None:
        load_secrets()
    env = dict(os.environ if env is None else env)
    home = Path(env.get("AUTOPLAY_HOME", REPO / "var")).resolve()
    tracking_uri = env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    return Settings(
        home=home,
        briefs_dir=Path(env.get("AUTOPLAY_BRIEFS", REPO / "examples")).resolve(),
        dagster_home=Path(env.get("DAGSTER_HOME", REPO / "dagster_home")).resolve(),
        kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        events_topic=env.get("AUTOPLAY_EVENTS_TOPIC", "autoplay.events"),
        dead_letter_topic=env.get("AUTOPLAY_DEAD_LETTER_TOPIC", "autoplay.events.dead"),
        meta_graph_url=env.get("META_GRAPH_URL") or None,
        meta_graph_video_url=env.get("META_GRAPH_VIDEO_URL") or None,
        shopify_admin_url=env.get("SHOPIFY_ADMIN_URL") or None,
        ingest_host=env.get("AUTOPLAY_INGEST_HOST", "127.0.0.1"),
        ingest_port=int(env.get("AUTOPLAY_INGEST_PORT", "8787")),
        mlflow_tracking_uri=tracking_uri,
        mlflow_experiment=env.get("AUTOPLAY_MLFLOW_EXPERIMENT", "autoplay"),
        mlflow_artifact_location=env.get("AUTOPLAY_MLFLOW_ARTIFACTS") or _local_artifacts(tracking_uri),
        render_profile=env.get("AUTOPLAY_RENDER_PROFILE", "preview"),
        render_max_jobs=int(env.get("AUTOPLAY_RENDER_MAX_JOBS", "50")),
        ingest_lag_threshold=int(env.get("AUTOPLAY_INGEST_LAG_THRESHOLD", "10000")),
        ingest_interval_s=float(env.get("AUTOPLAY_INGEST_INTERVAL_S", "300")),
        sandbox_clock_url=env.get("AUTOPLAY_SANDBOX_CLOCK_URL") or None,
        max_generations=int(env["AUTOPLAY_MAX_GENERATIONS"]) if env.get("AUTOPLAY_MAX_GENERATIONS") else None,
        seed=int(env.get("AUTOPLAY_SEED", "0")),
    )


def kafka_client_config(env: dict[str, str] | None = None) -> dict:
    """SASL/TLS options for a production cluster, from KAFKA_* variables (none for the embedded broker)."""
    env = dict(os.environ if env is None else env)
    config = {}
    if env.get("KAFKA_SECURITY_PROTOCOL"):
        config["security_protocol"] = env["KAFKA_SECURITY_PROTOCOL"]
    if env.get("KAFKA_SASL_MECHANISM"):
        config["sasl_mechanism"] = env["KAFKA_SASL_MECHANISM"]
        config["sasl_plain_username"] = env.get("KAFKA_SASL_USERNAME")
        config["sasl_plain_password"] = env.get("KAFKA_SASL_PASSWORD")
    return config
