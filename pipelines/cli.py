"""The ``autoplay`` command line (typer + rich)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.settings import REPO, load_settings

app = typer.Typer(
    help="autoplay: render product variants, publish them, learn what wins.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # error lines name paths: never wrapped


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@app.command()
def demo(
    brief: Path = typer.Option(REPO / "examples" / "waterbottle" / "brief.yaml", help="brief YAML file"),
    generations: int = typer.Option(3, min=1, max=20),
    profile: str = typer.Option("preview", help="render profile: thumbnail, preview or production"),
    seed: int = typer.Option(0, help="seed of the simulated market and the policy"),
) -> None:
    """Run generations of the loop against the sandbox on the embedded defaults, through Dagster."""
    from dagster import DagsterExecutionInterruptedError

    from experiments.brief import BriefError, load_brief
    from experiments.market import SimulatedMarket
    from pipelines.demo import run_demo

    logging.getLogger("kafka").setLevel(logging.ERROR)
    try:
        parsed = load_brief(brief)
    except BriefError as exc:
        _fail(str(exc))
    settings = load_settings()
    started = time.perf_counter()
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console) as progress:
        loop = progress.add_task("generations", total=generations)
        step = progress.add_task("starting broker and sandbox", total=None)
        renders = progress.add_task("renders", total=0, visible=False)

        class Bars:
            def stage(self, generation: int, name: str) -> None:
                progress.update(step, description=f"generation {generation}: {name}")
                if name == "plan" and generation:
                    progress.advance(loop)

            def renders_planned(self, generation: int, n: int) -> None:
                progress.reset(renders, total=n, visible=True, description=f"generation {generation}: renders")

            def render_done(self, variant_id: str) -> None:
                progress.advance(renders)

        try:
            result = run_demo(settings, brief, generations, profile, SimulatedMarket(seed=seed), Bars(), seed)
        except (KeyboardInterrupt, DagsterExecutionInterruptedError):
            _fail("interrupted; the broker and sandbox were stopped")
        progress.update(loop, completed=generations)
        progress.update(step, description="done", total=1, completed=1)

    _print_leaderboard(result.leaderboard, parsed.goal)
    shares = Table(title="Traffic share of the best live variant (true rates known to the sandbox)")
    for col in ("generation", "best live variant", "true CTR", "impressions", "traffic share"):
        shares.add_column(col, justify="right")
    for r in result.best_share.itertuples():
        shares.add_row(str(r.generation), r.variant_id, f"{r.true_rate:.3%}", f"{r.impressions:,.0f}", f"{r.share:.1%}")
    console.print(shares)
    read_back = Table(title="Read back through both channels (Meta insights; Shopify pixel and order webhooks)")
    for col in ("channel", "kind", "count", "value", "joined to Meta ads"):
        read_back.add_column(col, justify="right" if col not in ("channel", "kind") else "left")
    for r in result.read_back.itertuples():
        value = f"{r.value:,.2f}" if r.value == r.value and r.value else "-"
        joined = f"{r.joined_to_ads:,.0f}" if r.channel != "meta" and r.joined_to_ads == r.joined_to_ads else "-"
        read_back.add_row(r.channel, r.kind, f"{r.count:,.0f}", value, joined)
    console.print(read_back)
    console.print(f"events stored: {result.event_counts}")
    console.print(f"renders:         {result.renders_dir}")
    for sheet in result.sheets:
        console.print(f"contact sheet:   {sheet}")
    console.print(f"Dagster home:    {result.dagster_home}")
    console.print(f"MLflow store:    {result.mlflow_uri}")
    console.print(f"finished in {time.perf_counter() - started:.0f} s")


def _print_leaderboard(board, goal: str) -> None:
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
def templates() -> None:
    """List the shipped templates."""
    from rendering.templates import TEMPLATES

    for t in TEMPLATES.values():
        recipe = f"{t.background} backdrop, {t.ground} ground, {t.lighting} light, {t.camera} {t.lens_mm:g} mm"
        console.print(f"[bold]{t.name:<10}[/] {t.description} [dim]({recipe})[/]")


@app.command()
def render(
    model: Path = typer.Argument(..., help="product model: .glb, .gltf, .obj or .blend"),
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
    orientation: str = typer.Option("auto", help="which model axis is up: auto, as_is, +x, -x, +y, -y, +z, -z"),
    out: Path = typer.Option(Path("renders"), help="output folder"),
) -> None:
    """Render one product directly: files and a manifest.json per render, and a contact sheet."""
    from pydantic import ValidationError

    from rendering.batch import render_batch
    from rendering.contact_sheet import contact_sheet
    from rendering.model_check import ModelError, check_model_file
    from rendering.spec import RenderJob

    try:
        check_model_file(model)
        slots = dict(_slot_colour(item) for item in colourway)
        jobs = [
            RenderJob(
                model_path=str(model),
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
    failed, sheet = 0, []
    for job, r in zip(jobs, results):
        label = f"{job.template} {job.aspect}"
        if r["status"] == "failed":
            failed += 1
            err.print(f"[red]{label} failed:[/] {r['error']}")
            continue
        manifest = r["manifest"]
        files = ", ".join(manifest["files"].values())
        console.print(f"{label} {r['status']}: {r['dir']} ({files}; {manifest['device']['kind']})")
        still = manifest["files"].get("png") or manifest["files"]["poster_png"]
        sheet.append((Path(r["dir"]) / still, f"{label}\n{r['variant_id']}"))
    if sheet:
        console.print(f"contact sheet: {contact_sheet(sheet, out / 'contact_sheet.png', title=str(model.name))}")
    if failed:
        raise typer.Exit(1)


def _brief_or_fail(brief_path: Path | None):
    from experiments.brief import BriefError, load_brief

    try:
        return load_brief(brief_path or load_settings().brief_path)
    except BriefError as exc:
        _fail(str(exc))


@app.command("pause-all")
def pause_all(
    brief_path: Path = typer.Option(None, "--brief", help="brief naming the ad account (default: AUTOPLAY_BRIEF)"),
    every_brief: bool = typer.Option(False, "--every-brief", help="pause the loop's ads of every brief"),
) -> None:
    """The one switch: pause every ad (and its ad set) the loop has published in the brief's ad account.

    Talks to the configured account (META_ACCESS_TOKEN, META_GRAPH_URL) or the running `autoplay sandbox`."""
    from connectors.meta import MetaError
    from pipelines.channels import NoChannel, channel

    brief = _brief_or_fail(brief_path)
    try:
        with channel(load_settings(), brief, "meta", temporary_ok=False) as target:
            paused = target.client.pause_all(None if every_brief else brief.name)
    except (NoChannel, MetaError) as exc:
        _fail(str(exc))
    scope = "every brief" if every_brief else f"brief {brief.name}"
    console.print(f"paused {len(paused)} ads and their ad sets ({scope}, account {target.client.account_id})")


@app.command()
def publish(
    variant_dirs: list[Path] = typer.Argument(..., help="rendered variant folders (with manifest.json)"),
    channel_name: str = typer.Option(..., "--channel", help="meta or shopify"),
    activate: bool = typer.Option(False, "--activate", help="Meta: start the ad ACTIVE instead of PAUSED"),
    feature: bool = typer.Option(False, "--feature", help="Shopify: make the (last) render the featured image"),
    daily_budget: float = typer.Option(None, help="Meta: the ad set's daily budget (default: the brief's cap / live)"),
    brief_path: Path = typer.Option(None, "--brief", help="brief naming the account/shop (default: AUTOPLAY_BRIEF)"),
) -> None:
    """Publish rendered variants: Meta ads (stills or turntables, placed by aspect) or Shopify product media.

    Reaches the configured account/shop, else the running `autoplay sandbox`, else a temporary sandbox.
    Publishing again reuses what exists: nothing is ever created twice."""
    from connectors.meta import MetaError
    from connectors.shopify import RenderToAttach, ShopifyError
    from pipelines.channels import NoChannel, channel
    from pipelines.stages import alt_text, creative_for

    if channel_name not in ("meta", "shopify"):
        _fail(f"--channel {channel_name!r}: choose meta or shopify")
    brief = _brief_or_fail(brief_path)
    variants = []
    for folder in variant_dirs:
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            spec = manifest["spec"]
            factors = {"template": spec["template"]["name"], "colour": spec["colour"], "aspect": spec["aspect"]}
            variants.append({"variant_id": manifest["variant_id"], "render_dir": str(folder), **factors})
        except FileNotFoundError:
            _fail(f"{folder}: no manifest.json; pass a folder written by `autoplay render`")
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            _fail(f"{folder / 'manifest.json'}: not a render manifest ({type(exc).__name__}: {exc})")
    budget = daily_budget or brief.daily_budget / brief.autoplay.live_variants
    table = Table(title=f"published to {channel_name}")
    try:
        with channel(load_settings(), brief, channel_name) as target:
            console.print(f"{channel_name}: {target.where}")
            if channel_name == "meta":
                for col in ("variant", "aspect", "media", "ad", "ad set", "creative", "status"):
                    table.add_column(col)
                for v in variants:
                    creative = creative_for(brief, v)
                    pub = target.client.publish(creative, int(round(budget * 100)), activate=activate)
                    media = f"video {pub.video_id}" if pub.video_id else f"image {pub.image_hash[:10]}"
                    table.add_row(v["variant_id"], v["aspect"], media, pub.ad_id, pub.adset_id, pub.creative_id,
                                  pub.status)  # fmt: skip
            else:
                for col in ("variant", "product", "media", "status", "featured"):
                    table.add_column(col)
                for n, v in enumerate(variants):
                    creative = creative_for(brief, v)
                    render = RenderToAttach(v["variant_id"], creative.image_path, alt_text(brief, v))
                    media = target.client.attach(brief.shopify.product_id, render, feature and n == len(variants) - 1)
                    table.add_row(v["variant_id"], media.product_id, media.media_id, media.status, str(media.featured))
    except (NoChannel, MetaError, ShopifyError) as exc:
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

    from connectors.kafka_events import EventProducer
    from connectors.storefront_ingest import IngestEndpoint
    from pipelines.settings import kafka_client_config

    settings = load_settings()
    secret = os.environ.get("SHOPIFY_API_SECRET")
    if not secret:
        _fail("SHOPIFY_API_SECRET is not set: the endpoint verifies every webhook's HMAC with the app's secret")
    producer = EventProducer(_bootstrap(settings), settings.events_topic, **kafka_client_config())
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with IngestEndpoint(producer, secret, host=host or settings.ingest_host, port=port or settings.ingest_port) as ep:
        console.print(f"ingest endpoint on {ep.url}: POST /webhooks/shopify, POST /pixel; Ctrl-C stops it")
        try:
            signal.sigwait(stop_signals)
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
    settings = load_settings()
    console.print_json(json.dumps({k: str(v) for k, v in settings.__dict__.items()}))


if __name__ == "__main__":
    app()
