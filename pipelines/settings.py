"""All configuration of the loop, from the environment, with defaults that work on one machine.

Production values come from the environment (or dagster_home), never from edits to code.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.artifacts import ArtifactStore, ArtifactStoreError, FolderStore, artifact_store, mlflow_artifacts

REPO = Path(__file__).resolve().parent.parent


def _none_if_empty(value: object) -> object:
    return None if value == "" else value


Optional = Annotated[str | None, BeforeValidator(_none_if_empty)]


_GIVEN_ENV: ContextVar[bool] = ContextVar("given_env", default=False)


class SettingsError(ValueError):
    """An environment variable with a value the loop cannot use; the message names the variable."""


class Settings(BaseSettings):
    """Every setting of the loop, each read from the environment variable its alias names (pydantic-settings),
    with the default that works on one machine. A bad value fails naming the variable."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    home: Path = Field(REPO / "var", alias="AUTOPLAY_HOME")
    briefs_dir: Path = Field(REPO / "examples", alias="AUTOPLAY_BRIEFS")
    dagster_home: Path = Field(REPO / "dagster_home", alias="DAGSTER_HOME")
    kafka_bootstrap_servers: Optional = Field(None, alias="KAFKA_BOOTSTRAP_SERVERS")
    events_topic: str = Field("autoplay.events", alias="AUTOPLAY_EVENTS_TOPIC")
    dead_letter_topic: str = Field("autoplay.events.dead", alias="AUTOPLAY_DEAD_LETTER_TOPIC")
    meta_graph_url: Optional = Field(None, alias="META_GRAPH_URL")
    meta_graph_video_url: Optional = Field(None, alias="META_GRAPH_VIDEO_URL")
    shopify_admin_url: Optional = Field(None, alias="SHOPIFY_ADMIN_URL")
    ingest_host: str = Field("127.0.0.1", alias="AUTOPLAY_INGEST_HOST")
    ingest_port: int = Field(8787, ge=0, le=65535, alias="AUTOPLAY_INGEST_PORT")
    console_port: int = Field(8080, ge=0, le=65535, alias="AUTOPLAY_CONSOLE_PORT")
    mlflow_tracking_uri: Optional = Field(None, alias="MLFLOW_TRACKING_URI")  # default: a SQLite file in home
    mlflow_experiment: str = Field("autoplay", alias="AUTOPLAY_MLFLOW_EXPERIMENT")
    mlflow_artifact_location: Optional = Field(None, alias="AUTOPLAY_MLFLOW_ARTIFACTS")
    # render outputs every worker shares: unset for home/renders, a folder (a shared mount), or s3://bucket/prefix
    artifacts: Optional = Field(None, alias="AUTOPLAY_ARTIFACTS")
    artifacts_cache: Annotated[Path | None, BeforeValidator(_none_if_empty)] = Field(
        None, alias="AUTOPLAY_ARTIFACTS_CACHE"
    )  # this machine's copy of a remote store's renders (default home/renders)
    render_profile: str = Field("preview", alias="AUTOPLAY_RENDER_PROFILE")
    render_max_jobs: int = Field(50, ge=1, alias="AUTOPLAY_RENDER_MAX_JOBS")
    ingest_lag_threshold: int = Field(10000, ge=0, alias="AUTOPLAY_INGEST_LAG_THRESHOLD")
    ingest_interval_s: float = Field(300.0, gt=0, alias="AUTOPLAY_INGEST_INTERVAL_S")
    sandbox_clock_url: Optional = Field(None, alias="AUTOPLAY_SANDBOX_CLOCK_URL")
    # how often the deployment's Dagster daemon evaluates the sensors (Dagster's own loop: 5 s); see pipelines.daemon
    sensor_loop_s: float = Field(1.0, ge=0.2, le=60, alias="AUTOPLAY_SENSOR_LOOP_S")
    max_generations: Annotated[int | None, BeforeValidator(_none_if_empty)] = Field(
        None, ge=1, alias="AUTOPLAY_MAX_GENERATIONS"
    )
    seed: int = Field(0, alias="AUTOPLAY_SEED")
    executor: Literal["in_process", "celery", "k8s"] = Field("in_process", alias="AUTOPLAY_EXECUTOR")
    k8s_executor_config: Path = Field(
        REPO / "dagster_home" / "production" / "k8s" / "executor.yaml", alias="AUTOPLAY_K8S_EXECUTOR_CONFIG"
    )
    celery_broker: Optional = Field(None, alias="AUTOPLAY_CELERY_BROKER")  # `up` starts Redis when unset
    celery_backend: Optional = Field(None, alias="AUTOPLAY_CELERY_BACKEND")  # default: the broker
    celery_visibility_timeout_s: float = Field(
        3600.0, gt=0, alias="AUTOPLAY_CELERY_VISIBILITY_TIMEOUT_S"
    )  # a step whose worker died unseen (no ack) goes to another worker after this; longer than any render step
    render_workers: int = Field(1, ge=1, le=64, alias="AUTOPLAY_RENDER_WORKERS")
    # a Celery worker's step process is replaced after this many steps (Blender's own after AUTOPLAY_RENDER_MAX_JOBS)
    worker_max_tasks: int = Field(100, ge=1, alias="AUTOPLAY_WORKER_MAX_TASKS")
    # the Dagster instance on PostgreSQL (dagster_home/production/dagster.yaml reads it from the environment)
    dagster_postgres_url: Optional = Field(None, alias="AUTOPLAY_DAGSTER_POSTGRES_URL")

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        """Resolve paths, and the MLflow store and its artifacts from the home when not given."""
        for name in ("home", "briefs_dir", "dagster_home"):
            object.__setattr__(self, name, getattr(self, name).resolve())
        if self.mlflow_tracking_uri is None:
            object.__setattr__(self, "mlflow_tracking_uri", f"sqlite:///{self.home / 'mlflow.db'}")
        if self.mlflow_artifact_location is None:
            location = local_artifacts(self.mlflow_tracking_uri, self.home, self.artifacts)
            object.__setattr__(self, "mlflow_artifact_location", location)
        return self

    @field_validator("artifacts")
    @classmethod
    def _artifacts(cls, value: str | None) -> str | None:
        try:
            store = artifact_store(value, Path("."))  # parses only; nothing is reached
        except ArtifactStoreError as exc:
            raise ValueError(str(exc)) from None
        if isinstance(store, FolderStore):  # one folder for every process, whatever its working directory
            return str(store.local_root.parent) if value else value
        return "s3" + value[value.index(":") :]  # S3:// as s3://, which MLflow and the ledger compare

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        """The process environment, unless ``load_settings`` was handed an environment of its own."""
        return (init_settings,) if _GIVEN_ENV.get() else (init_settings, env_settings)

    def replace(self, **changes) -> Settings:
        return self.model_copy(update=changes)

    @property
    def event_store_path(self) -> Path:
        return self.home / "events.duckdb"

    @property
    def lock_path(self) -> Path:
        return self.home / "autoplay.lock"

    @property
    def renders_dir(self) -> Path:
        """Where this machine writes renders (and keeps its copy of a remote store's)."""
        return self.artifact_store().local_root

    def artifact_store(self) -> ArtifactStore:
        return artifact_store(self.artifacts, self.home, self.artifacts_cache)

    @property
    def sheets_dir(self) -> Path:
        return self.home / "contact_sheets"


#: psycopg2 named explicitly: SQLAlchemy 2.1 would pick psycopg 3 for postgresql://, which dagster-postgres's
#: queries do not run on.
POSTGRES_SCHEME = "postgresql+psycopg2"


def is_postgres(url: str) -> bool:
    return url.split("://", 1)[0] in ("postgres", "postgresql", POSTGRES_SCHEME)


def local_artifacts(tracking_uri: str, home: Path, artifacts: str | None = None) -> str | None:
    """Where MLflow artifacts go when MLflow is a store, not a server: beside the renders in the artifact store
    when one is given; else a SQLite store's in ``mlartifacts`` beside its file, a PostgreSQL store's in the
    home's (MLflow's own default is ./mlruns under whatever directory the process runs in). A tracking server
    decides for itself."""
    if tracking_uri.startswith(("http://", "https://")):
        return None
    if artifacts:
        return mlflow_artifacts(artifacts)
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    if is_postgres(tracking_uri):
        return (home / "mlartifacts").as_uri()
    return None


#: Secrets the connectors read from the environment (or the secrets file); never from code or run config.
SECRET_NAMES = (
    "META_ACCESS_TOKEN",
    "SHOPIFY_ACCESS_TOKEN",
    "SHOPIFY_API_SECRET",
    "KAFKA_SASL_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
)


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
    """The settings from the process environment (after the secrets file), or from ``env`` alone."""
    if env is None:
        load_secrets()
    try:
        if env is None:
            return Settings()
        token = _GIVEN_ENV.set(True)
        try:
            return Settings(**env)
        finally:
            _GIVEN_ENV.reset(token)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(map(str, error["loc"]))
            if not name:  # a check over several settings: its input is the whole environment, secrets too
                problems.append(error["msg"])
                continue
            problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
        raise SettingsError("bad setting: " + "; ".join(problems)) from None


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
