"""Shared fixtures: the real Kafka broker (Tansu), the shipped product model, a brief for tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from connectors.kafka_broker import EmbeddedBroker

REPO = Path(__file__).resolve().parent.parent
WATERBOTTLE = REPO / "examples" / "waterbottle" / "WaterBottle.glb"
EXAMPLE_BRIEF = REPO / "examples" / "waterbottle" / "brief.yaml"
# briefs written by the tests name the shipped model, outside their own folder: allow it (and nothing else)
os.environ["AUTOPLAY_ASSET_ROOTS"] = str(REPO / "examples")


def rendered_folder(folder: Path, colour: str, aspect: str = "1:1", variant_id: str | None = None) -> Path:
    """A render folder as the worker leaves it (a still and its manifest), without running Blender: for
    tests of what happens after rendering."""
    from PIL import Image

    from rendering.outputs import RenderManifest
    from rendering.spec import RenderJob

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), colour).save(folder / "still.jpg")
    Image.new("RGB", (64, 64), colour).save(folder / "still.png")
    job = RenderJob(model_path=str(WATERBOTTLE), template="studio", colour=colour, aspect=aspect)
    RenderManifest(
        variant_id=variant_id or folder.name,
        spec={},
        job=job,
        inputs={},
        cache_key="",
        size=(64, 64),
        files={"png": "still.png", "jpeg": "still.jpg"},
        framing={},
        normalised={},
        staging={},
        qa={"passed": True, "failures": []},
        device={"kind": "CPU"},
        worker={},
        timings_s={},
        rendered_at="2026-11-01T00:00:00+00:00",
    ).write(folder)
    return folder


def deployment_env(root: Path, broker) -> dict:
    """The environment of a deployment under ``root`` (home, catalog ``root/briefs``, Dagster home) on the test
    broker with topics of its own, rendering at thumbnail size; no credential or setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("META_", "SHOPIFY_", "AUTOPLAY_", "DAGSTER_"))}
    return env | {
        "AUTOPLAY_HOME": str(root / "home"),
        "AUTOPLAY_BRIEFS": str(root / "briefs"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "AUTOPLAY_EVENTS_TOPIC": f"events-{root.name}",
        "AUTOPLAY_DEAD_LETTER_TOPIC": f"events-{root.name}.dead",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "AUTOPLAY_RENDER_PROFILE": "thumbnail",
    }


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One real Kafka-protocol broker for the session; tests use their own topics."""
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("kafka") / "tansu.log") as b:
        yield b


@pytest.fixture
def brief_file(tmp_path):
    """Write a brief (the example, with overrides) next to a copy-free link to the model; returns a writer."""

    def write(**overrides) -> Path:
        data = yaml.safe_load(EXAMPLE_BRIEF.read_text())
        data["product"]["model"] = str(WATERBOTTLE)
        for key, value in overrides.items():
            target = data
            *parents, leaf = key.split(".")
            for p in parents:
                target = target[p]
            if value is None:
                target.pop(leaf, None)
            else:
                target[leaf] = value
        path = tmp_path / "brief.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write
