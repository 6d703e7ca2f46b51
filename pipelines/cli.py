"""The ``autoplay`` command line (typer + rich)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import sys
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines import cli_console, cli_loop
from pipelines.cli_common import console, err, exit_process
from pipelines.cli_common import fail as _fail
from pipelines.settings import SettingsError, load_settings

app = typer.Typer(
    help="autoplay: render product variants, publish them, learn what wins.",
    no_args_is_help=True,
    # rich's traceback never returns on the cyclic exception chains Dagster raises: plain tracebacks
    pretty_exceptions_enable=False,
)
cli_loop.register(app)
cli_console.register(app)


def print_leaderboard(board, goal: str) -> None:
    table = Table(title=f"Leaderboard ({goal})")
    for col in (
        "variant",
        "template",
        "colour",
        "aspect",
        "impressions",
        "clicks",
        "CTR",
        "posterior mean",
        "95% interval",
        "traffic share",
    ):
        table.add_column(col, justify="right" if col not in ("variant", "template") else "left")
    for r in board.itertuples():
        table.add_row(
            r.variant_id,
            r.template,
            r.colour,
            r.aspect,
            f"{r.impressions:,.0f}",
            f"{r.clicks:,.0f}",
            f"{r.clicks / r.impressions:.3%}" if r.impressions else "-",
            f"{r.posterior_mean:.3%}",
            f"{r.ci_low:.3%} - {r.ci_high:.3%}",
            f"{r.traffic_share:.1%}",
        )
    console.print(table)


@app.command()
def templates(as_json: bool = typer.Option(False, "--json", help="print JSON: name, kind and window of each")) -> None:
    """List the shipped templates; a seasonal one runs only inside its window (MM-DD to MM-DD)."""
    from creative.vocabulary import TEMPLATES

    if as_json:
        rows = [{"name": t.name, "kind": t.kind, "window": t.window.model_dump() if t.window else None}
                for t in TEMPLATES.values()]  # fmt: skip
        print(json.dumps(rows, indent=2))
        return
    for t in TEMPLATES.values():
        recipe = f"{t.background} backdrop, {t.ground} ground, {t.lighting} light, {t.camera} {t.lens_mm:g} mm"
        window = f", runs {t.window.start} to {t.window.end}" if t.window else ""
        console.print(f"[bold]{t.name:<16}[/] {t.description} [dim]({t.kind}{window}; {recipe})[/]")


@app.command()
def render(
    models: list[Path] = typer.Argument(
        ...,
        help="product model: .glb, .gltf, .obj or .blend; several render together as a bundle, the first in the middle",
    ),
    template: list[str] = typer.Option(..., help="template name (see `autoplay templates`); repeat for several"),
    colour: str = typer.Option(..., help="background colour as #RRGGBB"),
    aspect: list[str] = typer.Option(["1:1"], help="aspect ratio (1:1, 4:5, 9:16, 16:9); repeat for several"),
    turntable: bool = typer.Option(False, "--turntable", help="render a looping 360 degree MP4 and a poster"),
    seconds: float = typer.Option(4.0, help="turntable length in seconds"),
    fps: int = typer.Option(24, help="turntable frame rate"),
    profile: str = typer.Option("preview", help="thumbnail, preview or production"),
    podium_colour: str = typer.Option(None, help="podium colour as #RRGGBB (default: a shade of --colour)"),
    accent_colour: str = typer.Option(None, help="gradient end and rim-light tint as #RRGGBB"),
    colourway: list[str] = typer.Option([], help="recolour a material slot: SLOT=#RRGGBB; repeat for several"),
    orientation: str = typer.Option(
        "auto", help="the model file's axis that is up: auto, as_is, +x, -x, +y, -y, +z, -z"
    ),
    height_m: list[float] = typer.Option(
        [], "--height-m", help="a bundle's real heights in metres, one per model in order (an OBJ carries no unit)"
    ),
    out: Path = typer.Option(Path("renders"), help="output folder"),
) -> None:
    """Render one product (or a bundle of several) directly: files and a manifest.json per render, and a
    contact sheet. --colourway and --orientation apply to the first model."""
    from pydantic import ValidationError

    from rendering.batch import render_batch
    from rendering.contact_sheet import folder_contact_sheet
    from rendering.model_check import ModelError, check_bundle_sizes, check_model_file, check_render_inputs
    from rendering.qa import QAReport
    from rendering.spec import Companion, RenderJob

    try:
        if height_m and len(height_m) != len(models):
            raise ValueError(f"--height-m: {len(height_m)} heights for {len(models)} models; give one per model")
        heights = height_m or [None] * len(models)
        slots = dict(_slot_colour(item) for item in colourway)
        for i, model in enumerate(models):
            check_model_file(model)
            check_render_inputs(model, slots if i == 0 else {})
        check_bundle_sizes(list(zip(models, heights)))
        companions = tuple(Companion(model_path=str(m), height_m=h) for m, h in zip(models[1:], heights[1:]))
        jobs = [
            RenderJob(
                model_path=str(models[0]),
                template=t,
                colour=colour,
                aspect=a,
                profile=profile,
                podium_colour=podium_colour,
                accent_colour=accent_colour,
                colourway=slots,
                orientation=orientation,
                kind="turntable" if turntable else "still",
                seconds=seconds,
                fps=fps,
                height_m=heights[0] if companions else None,
                companions=companions,
            )
            for t in template
            for a in aspect
        ]
    except ValidationError as exc:
        _fail(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        )
    except (ModelError, ValueError) as exc:
        _fail(str(exc))
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("rendering", total=len(jobs))
        results = render_batch(jobs, out, on_result=lambda r: progress.advance(task))
    failed = 0
    for job, r in zip(jobs, results):
        label = f"{job.template} {job.aspect}"
        if r.status == "failed":
            failed += 1
            err.print(f"[red]{label} failed:[/] {r.error}")
            continue
        manifest = r.manifest
        files = ", ".join(manifest.files.values())
        console.print(f"{label} {r.status}: {r.dir} ({files}; {manifest.device['kind']})")
        console.print(f"  QA: {QAReport.from_dict(manifest.qa).summary()}")
        failed += r.status == "qa_failed"
    sheet = folder_contact_sheet(out, title=str(out))
    if sheet:
        console.print(f"contact sheet: {sheet}")
    if failed:
        raise typer.Exit(1)


def _brief_or_fail(brief: str | None):
    """``--brief``: a brief file, or the name of a brief in the catalog (AUTOPLAY_BRIEFS); without it, the
    catalog's only brief."""
    from creative.brief import BriefError, load_brief
    from experiments.catalog import load_catalog

    try:
        if brief and Path(brief).is_file():
            return load_brief(brief)
        catalog = load_catalog(load_settings().briefs_dir)
        if brief:
            return catalog.brief(brief)
        if len(catalog.briefs) != 1:
            _fail(f"--brief: name one of the catalog's briefs ({', '.join(catalog.names) or 'none'}) or a brief file")
        return catalog.briefs[catalog.names[0]]
    except BriefError as exc:
        _fail(str(exc))


@app.command()
def publish(
    variant_dirs: list[Path] = typer.Argument(..., help="rendered variant folders (with manifest.json)"),
    channel_name: str = typer.Option(..., "--channel", help="meta or shopify"),
    activate: bool = typer.Option(False, "--activate", help="Meta: start the ad ACTIVE instead of PAUSED"),
    feature: bool = typer.Option(False, "--feature", help="Shopify: make the (last) render the featured image"),
    daily_budget: float = typer.Option(None, help="Meta: the ad set's daily budget (default: the brief's cap / live)"),
    brief_path: str = typer.Option(None, "--brief", help="brief file or name in the catalog (default: the only one)"),
) -> None:
    """Publish rendered variants: Meta ads (stills or turntables, placed by aspect) or Shopify product media.

    Reaches the configured account/shop, else the running `autoplay sandbox`, else a temporary sandbox.
    Publishing again reuses what exists: nothing is ever created twice."""
    from connectors.artifacts import FolderStore
    from connectors.event_store import EventStore
    from connectors.ledger import LeaseBusy, Ledger
    from connectors.meta import MetaError
    from connectors.shopify import RenderToAttach, ShopifyError
    from pipelines.channels import NoChannel, channel
    from pipelines.stages import alt_text, creative_for
    from rendering.outputs import ManifestError, RenderManifest

    if channel_name not in ("meta", "shopify"):
        _fail(f"--channel {channel_name!r}: choose meta or shopify")
    brief = _brief_or_fail(brief_path)
    variants = []
    for folder in variant_dirs:
        try:
            manifest = RenderManifest.load(folder)
        except ManifestError as exc:
            _fail(str(exc))
        variants.append({"variant_id": manifest.variant_id, "render_dir": str(folder), **manifest.factors.as_dict()})
    budget = brief.daily_budget / brief.autoplay.live_variants if daily_budget is None else daily_budget
    if not math.isfinite(budget) or budget <= 0 or budget > brief.daily_budget:
        _fail(f"--daily-budget {daily_budget}: must be above 0 and at most the brief's daily cap of "
              f"{brief.daily_budget:g} {brief.currency}")  # fmt: skip
    table = Table(title=f"published to {channel_name}")
    settings = load_settings()
    ledger = Ledger(EventStore(settings.event_store_path))
    owner = f"cli:{socket.gethostname()}:{os.getpid()}"
    try:
        with channel(settings, brief, channel_name) as target:
            console.print(f"{channel_name}: {target.where}")
            if channel_name == "meta":
                for col in ("variant", "aspect", "media", "ad", "ad set", "creative", "status"):
                    table.add_column(col)
                for v in variants:
                    creative = creative_for(brief, v, FolderStore(Path(v["render_dir"]).parent))
                    with ledger.lease(brief.name, v["variant_id"], "meta", owner):  # concurrent publishes: one
                        pub = target.client.publish(creative, int(round(budget * 100)), activate=activate)
                    media = f"video {pub.video_id}" if pub.video_id else f"image {pub.image_hash[:10]}"
                    table.add_row(v["variant_id"], v["aspect"], media, pub.ad_id, pub.adset_id, pub.creative_id,
                                  pub.status)  # fmt: skip
            else:
                for col in ("variant", "product", "media", "status", "featured"):
                    table.add_column(col)
                for n, v in enumerate(variants):
                    creative = creative_for(brief, v, FolderStore(Path(v["render_dir"]).parent))
                    render = RenderToAttach(v["variant_id"], creative.image_path, alt_text(brief, v))
                    media = target.client.attach(brief.shopify.product_id, render, feature and n == len(variants) - 1)
                    table.add_row(v["variant_id"], media.product_id, media.media_id, media.status, str(media.featured))
    except (NoChannel, MetaError, ShopifyError, LeaseBusy) as exc:
        _fail(str(exc))
    console.print(table)


@app.command()
def sandbox() -> None:
    """Run the Meta and Shopify sandboxes until Ctrl-C; `publish` and `pause-all` find them while they run."""
    import os
    import signal

    from pipelines.channels import sandbox_marker, serve_sandboxes

    settings = load_settings()
    brief = _brief_or_fail(None)
    settings.home.mkdir(parents=True, exist_ok=True)
    marker = sandbox_marker(settings)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with serve_sandboxes(brief) as running:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # sandbox tokens, for this user only
        with os.fdopen(fd, "w") as f:
            json.dump(running.addresses(), f)
        console.print(f"Meta Graph API sandbox on {running.meta.url}; Shopify Admin sandbox on {running.shop.url}")
        console.print("Ctrl-C stops them")
        try:
            signal.sigwait(stop_signals)
        finally:
            marker.unlink(missing_ok=True)


@app.command("ingest-endpoint")
def ingest_endpoint(
    host: str = typer.Option(None, help="address to listen on (default AUTOPLAY_INGEST_HOST, 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default AUTOPLAY_INGEST_PORT, 8787)"),
) -> None:
    """Serve the ingest endpoint: Shopify order webhooks (POST /webhooks/shopify, HMAC-verified with
    SHOPIFY_API_SECRET) and storefront pixel events (POST /pixel), produced to Kafka."""
    import os
    import signal

    from connectors.ingest_server import IngestConfig, serve_forever
    from connectors.kafka_events import EventProducer
    from experiments.catalog import load_catalog
    from pipelines.settings import kafka_client_config

    settings = load_settings()
    secret = os.environ.get("SHOPIFY_API_SECRET")
    if not secret:
        _fail("SHOPIFY_API_SECRET is not set: the endpoint verifies every webhook's HMAC with the app's secret")
    catalog = load_catalog(settings.briefs_dir)
    origins = frozenset().union(*(b.storefront_origins for b in catalog.briefs.values()))
    producer = EventProducer(_bootstrap(settings), settings.events_topic, **kafka_client_config())
    for sig in (signal.SIGINT, signal.SIGTERM):  # uvicorn handles both; undo what a parent may have left
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    host, port = host or settings.ingest_host, port or settings.ingest_port
    console.print(f"ingest endpoint on http://{host}:{port}: POST /webhooks/shopify, POST /pixel "
                  f"(origins {', '.join(sorted(origins)) or 'none'}); Ctrl-C stops it")  # fmt: skip
    try:
        serve_forever(producer, IngestConfig(secret, origins), host, port)
    finally:
        producer.close()


def _slot_colour(item: str) -> tuple[str, str]:
    slot, sep, hex_colour = item.partition("=")
    if not sep or not slot:
        raise ValueError(f"--colourway {item!r}: expected SLOT=#RRGGBB")
    return slot, hex_colour


events = typer.Typer(help="Performance events: Kafka -> event store.", no_args_is_help=True)
app.add_typer(events, name="events")


def _bootstrap(settings) -> str:
    """The configured cluster, else the embedded broker that `autoplay broker` is running."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    try:
        return json.loads((settings.home / "broker.json").read_text())["bootstrap_servers"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        _fail("no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS, or run `autoplay broker` in another terminal")


def _ingestor(batch_size: int = 5000, member: int = 0, members: int = 1):
    from connectors.event_store import EventStore
    from connectors.kafka_events import EventIngestor
    from pipelines.settings import kafka_client_config

    settings = load_settings()
    store = EventStore(settings.event_store_path)
    return settings, EventIngestor(
        _bootstrap(settings),
        settings.events_topic,
        store,
        settings.dead_letter_topic,
        batch_size=batch_size,
        member=member,
        members=members,
        **kafka_client_config(),
    )


@events.command("ingest")
def events_ingest(
    until_idle: bool = typer.Option(False, "--until-idle", help="stop once the topic has been read to its end"),
    batch_size: int = typer.Option(5000, min=1, max=100_000),
    member: int = typer.Option(0, help="this ingestor's index when several split the partitions"),
    members: int = typer.Option(1, help="how many ingestors split the partitions"),
) -> None:
    """Read events from Kafka into the event store, in bounded batches; Ctrl-C stops cleanly."""
    import threading

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    settings, ingestor = _ingestor(batch_size, member, members)
    stop = threading.Event()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task(f"ingesting {settings.events_topic}", total=None)

        def show(stats) -> None:
            rate = stats.messages / max(time.monotonic() - begun, 1e-9)
            progress.update(
                task,
                description=f"{stats.messages:,} messages, {stats.stored:,} stored, "
                f"{stats.dead_letters:,} dead letters ({rate:,.0f}/s)",
            )

        begun = time.monotonic()
        try:
            stats = ingestor.run(until_idle=until_idle, stop=stop, on_batch=show)
        except KeyboardInterrupt:
            stop.set()
            raise typer.Exit(130) from None
    console.print_json(json.dumps(dataclasses.asdict(stats)))


@events.command("stats")
def events_stats(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Stored, duplicates dropped, dead letters by reason, lag per partition, newest event time."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    settings, ingestor = _ingestor()
    out = ingestor.store.stats(settings.events_topic)
    out["lag"] = ingestor.lag()
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table(title=f"events on {settings.events_topic}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in out.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


@app.command()
def broker() -> None:
    """Run the embedded Kafka broker (memory-only) until Ctrl-C; other commands find it while it runs."""
    import signal

    from connectors.kafka_broker import EmbeddedBroker, ensure_topics

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    marker = settings.home / "broker.json"
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait below, so cleanup runs
    with EmbeddedBroker(log_path=settings.home / "kafka.log") as b:
        ensure_topics(b.bootstrap_servers, {settings.events_topic: 4, settings.dead_letter_topic: 1})
        marker.write_text(json.dumps({"bootstrap_servers": b.bootstrap_servers}))
        console.print(f"Kafka broker on {b.bootstrap_servers} (memory-only); Ctrl-C stops it")
        try:
            signal.sigwait(stop_signals)
        finally:
            marker.unlink(missing_ok=True)


@app.command()
def config() -> None:
    """Show the settings in force (no secrets)."""
    from connectors.secrets import redact

    settings = load_settings()
    console.print_json(json.dumps({k: redact(str(v)) for k, v in settings.__dict__.items()}))


def main() -> None:
    """The console script: a bad setting in the environment is one line naming the variable, exit 2."""
    try:
        app()
    except SettingsError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except SystemExit as exc:  # typer ends every command with one
        exit_process(exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1)


if __name__ == "__main__":
    main()
