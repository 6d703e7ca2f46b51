"""The stages of the loop as plain functions over explicit objects; the Dagster assets only call these.

This is where the packages' boundary types are translated into each other: planned factors into render
jobs, renders into creatives to publish, insights into events, stored events into arm statistics.
MLflow is imported only by the stages that train or promote: every Dagster run loads this module first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from connectors.artifacts import ArtifactStore, ArtifactStoreError
from connectors.event_store import EventStore
from connectors.events import snapshots_from_insights
from connectors.kafka_events import EventIngestor, EventProducer, IngestStats
from connectors.ledger import MODEL_3D_CHANNEL, Action, Ledger
from connectors.meta import AdReview, Asset, CreativeToPublish, MetaAds
from connectors.shopify import ModelToAttach, RenderToAttach, ShopifyAdmin, ShopifyError
from creative.brief import Brief
from creative.decision import Decision
from creative.vocabulary import VariantFactors, get_template
from experiments import evaluation, planning, reporting
from experiments.cadence import BriefProgress
from experiments.tracking import TrackingTarget, log_training
from rendering.batch import render_batch
from rendering.contact_sheet import contact_sheet
from rendering.model_check import ModelError
from rendering.outputs import RenderManifest, RenderResult
from rendering.product_model import export_product_model
from rendering.spec import Companion, RenderJob

if TYPE_CHECKING:
    from experiments.policy_model import PolicyModel

INSIGHTS_LOOKBACK_DAYS = 28  # Meta restates numbers for weeks: re-read them, snapshots upsert
MIN_BUDGET_CENTS = 100  # the platform's minimum daily budget of an ad set; new ads start there, PAUSED


def render_job(brief: Brief, factors: VariantFactors, profile: str) -> RenderJob:
    """The render job of a variant: its factors on the brief's product (and a bundle's other products),
    colours and orientation. A seasonal scene keeps its own accent (the season's colour) over the brand's."""
    seasonal = get_template(factors.template).kind == "seasonal"
    return RenderJob(
        model_path=str(brief.product.model),
        **factors.as_dict(),
        profile=profile,
        podium_colour=brief.podium_colour,
        accent_colour=None if seasonal else brief.accent_colour,
        colourway=brief.product.colourway,
        orientation=brief.product.orientation,
        height_m=brief.product.height_m if brief.products else None,
        companions=tuple(
            Companion(model_path=str(p.model), orientation=p.orientation, colourway=p.colourway, height_m=p.height_m)
            for p in brief.products
        ),
        **(
            {"seconds": brief.autoplay.turntable_seconds, "fps": brief.autoplay.turntable_fps}
            if factors.kind == "turntable"
            else {}
        ),
    )


@dataclass
class PlanResult:
    generation: int
    live: pd.DataFrame
    new_variant_ids: list[str]


def plan(
    brief: Brief,
    ledger: Ledger,
    store: EventStore,
    profile: str,
    today: date,
    actor: str,
    brief_path: Path | None = None,
    seed: int = 0,
) -> PlanResult:
    """Choose the next generation's live variants and record them, with their decisions, in the ledger."""
    ledger.record_brief(brief.name, brief.brand, str(brief_path or ""), brief.model_dump(mode="json"))
    current = ledger.current_generation(brief.name)
    generation = 0 if current is None else current + 1
    rng = np.random.default_rng([seed, generation])
    known = ledger.variants(brief.name)
    live = ledger.live(brief.name, current) if current is not None else known.iloc[0:0]
    live = live[(live["render_status"] == "rendered") & live["retired_reason"].isna()] if len(live) else live
    history = planning.evidence(brief, known, brief_daily(ledger, store, brief)) if len(known) else None
    tried = {VariantFactors.of(r).key for r in known.to_dict("records")}
    catalog = catalog_evidence(brief, ledger, store)
    decisions = planning.plan_generation(brief, live, history, tried, rng, catalog, today)

    rows, logged = [], []
    for d in decisions:
        job = render_job(brief, d.factors, profile)
        rows.append(
            {"variant_id": job.variant_id, **d.factors.as_dict(), "profile": profile, "spec": job.model_dump_json()}
        )
        logged.append(replace(d, variant_id=job.variant_id, policy_version=f"plan-g{generation}"))
    planned = pd.DataFrame(rows)
    ledger.start_generation(brief.name, generation, planned, logged, opened_on=today)
    new_ids = [r["variant_id"] for r, d in zip(rows, decisions) if d.kind in ("explore", "succeed")]
    kinds = pd.Series([d.kind for d in decisions]).value_counts().to_dict()
    ledger.log_action(
        Action(
            brief.name,
            "plan",
            actor,
            f"generation {generation} opened on {today}",
            {"generation": generation, "decisions": kinds, "variants": planned["variant_id"].tolist()},
        )
    )
    return PlanResult(generation, planned.drop(columns=["spec"]), new_ids)


def pending_renders(ledger: Ledger, brief: str) -> list[str]:
    """Live variants of the current generation that have no render yet: new ones and kept ones alike."""
    generation = ledger.current_generation(brief)
    if generation is None:
        return []
    live = ledger.live(brief, generation)
    return live.loc[live["render_status"] == "planned", "variant_id"].tolist()


def progress(ledger: Ledger, brief: str) -> BriefProgress:
    """Where a brief's loop stands, for the cadence."""
    generation = ledger.current_generation(brief)
    if generation is None:
        return BriefProgress()
    days = ledger.days(brief)
    served = days[(days["generation"] == generation) & ~days["paused"].astype(bool)]
    gens = ledger.generations(brief).set_index("generation")
    return BriefProgress(
        generation=int(generation),
        days_in_generation=len(served),
        last_day=pd.Timestamp(days["day"].max()).date() if len(days) else None,
        renders_pending=tuple(pending_renders(ledger, brief)),
        closed=bool(pd.notna(gens.loc[generation, "policy_run_id"])),
    )


def render(
    ledger: Ledger,
    variant_ids: list[str],
    artifacts: ArtifactStore,
    actor: str,
    on_result=None,
    max_jobs_per_worker: int = 50,
) -> list[dict]:
    """Render planned variants in worker processes (the product imported once per worker), put them in the
    artifact store and record each outcome and location in the ledger. A render the store already holds is
    not rendered again, on this machine or another. A failed variant does not stop the others; the error
    names every failure.

    Each variant renders from the job recorded when it was planned, so the picture is the one planned."""
    jobs, gone = [], {}
    for variant_id in variant_ids:
        job = RenderJob.model_validate_json(ledger.render_spec(variant_id))
        try:
            current = job.variant_id  # hashes every product file in the picture
        except OSError as exc:  # a product file was removed since the plan: that variant fails, the others go on
            gone[variant_id] = RenderResult(variant_id, "failed", error=f"{exc.filename}: {exc.strerror}")
            continue
        if current != variant_id:
            raise ValueError(
                f"variant {variant_id}: what its picture depends on changed since it was planned (product file, "
                f"template recipe or profile; it would now be {current}); the next plan replaces it"
            )
        jobs.append(job)
    alternates = _alternate_renders(ledger, jobs)
    extra = {a.variant_id: a for alts in alternates.values() for a in alts if a.variant_id not in variant_ids}
    extra_ids = set(extra)

    stored: dict[str, str] = {}
    unstored: dict[str, str] = {}

    def reported(r: RenderResult) -> None:
        """Each render into the store as soon as it is done (a step killed later loses only the one in
        flight); QA refusals too, for people to look at. Progress counts variants, not their other aspects.
        A store that refuses one render fails that variant, naming why; the batch goes on."""
        if r.dir is not None:
            try:
                stored[r.variant_id] = artifacts.put(Path(r.dir), r.variant_id)
            except ArtifactStoreError as exc:
                unstored[r.variant_id] = f"artifact store: {exc}"
        if on_result is not None and r.variant_id not in extra_ids:
            on_result(r)

    batch = [*jobs, *extra.values()]
    for job in batch:
        artifacts.pull(job.variant_id)  # rendered before, maybe elsewhere: the cache answers it
    done = render_batch(batch, artifacts.local_root, on_result=reported, max_jobs_per_worker=max_jobs_per_worker)
    done = [
        RenderResult(r.variant_id, "failed", error=unstored[r.variant_id])
        if r.variant_id in unstored
        else replace(r, dir=stored[r.variant_id])
        if r.dir is not None
        else r
        for r in done
    ]
    by_id = gone | dict(zip([j.variant_id for j in batch], done))
    results = [
        _with_alternates(by_id[v], [(alt.aspect, by_id[alt.variant_id]) for alt in alternates.get(v, [])])
        for v in variant_ids
    ]
    failed, refused = [], 0
    for variant_id, result in zip(variant_ids, results):
        if result.status == "failed":
            ledger.set_render(variant_id, "failed", None, result.error)
            failed.append(f"{variant_id}: {result.error}")
        elif result.status == "qa_failed":  # kept to look at, never published; the loop goes on
            ledger.set_render(variant_id, "qa_failed", result.dir, result.error)
            refused += 1
        else:
            ledger.set_render(variant_id, "rendered", result.dir)
    for brief in sorted(set(ledger.briefs_of(variant_ids))):
        ledger.log_action(
            Action(
                brief,
                "render",
                actor,
                f"{len(variant_ids) - len(failed) - refused} rendered, {refused} refused by render QA, "
                f"{len(failed)} failed",
                {r.variant_id: r.status for r in results},
            )
        )
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(variant_ids)} renders failed; the others are recorded. " + "; ".join(failed)
        )
    return results


def native_renders(brief: Brief, job: RenderJob) -> list[RenderJob]:
    """The renders in the brief's other aspects that ride in a variant's ad when the brief asks for one ad
    with every aspect (``meta.native_aspects``); none otherwise."""
    return [job.in_aspect(a) for a in brief.aspects if a != job.aspect] if brief.native_aspects else []


def _alternate_renders(ledger: Ledger, jobs: list[RenderJob]) -> dict[str, list[RenderJob]]:
    """For each job, the other aspects any brief that planned it needs for its ads."""
    planners = ledger.planned_by([j.variant_id for j in jobs])
    briefs = {
        name: Brief.model_validate(spec)
        for name in {n for names in planners.values() for n in names}
        if (spec := ledger.brief_spec(name)) is not None
    }
    out = {}
    for job in jobs:
        alts = [
            alt
            for name in planners.get(job.variant_id, [])
            if name in briefs
            for alt in native_renders(briefs[name], job)
        ]
        out[job.variant_id] = list({alt.variant_id: alt for alt in alts}.values())
    return out


def _with_alternates(result: RenderResult, alternates: list[tuple[str, RenderResult]]) -> RenderResult:
    """A variant's outcome over all its renders: failed or refused when any one of them is, naming the aspect."""
    bad = [(aspect, r) for aspect, r in alternates if not r.usable]
    if not bad:
        return result
    errors = ([] if result.usable else [result.error or result.status]) + [f"{a}: {r.error}" for a, r in bad]
    status = "failed" if "failed" in {result.status, *(r.status for _, r in bad)} else "qa_failed"
    return replace(result, status=status, error="; ".join(errors))


def creative_for(brief: Brief, variant: dict, artifacts: ArtifactStore) -> CreativeToPublish:
    """The Meta creative of a rendered variant: its still, or its turntable with the poster; with
    ``meta.native_aspects``, its renders in the brief's other aspects beside it."""
    main = _asset(artifacts.local(variant["render_dir"]), variant["aspect"])
    alternates = ()
    if brief.native_aspects:
        job = RenderJob.model_validate_json(variant["spec"])
        alternates = tuple(
            _asset(artifacts.local(artifacts.location(alt.variant_id)), alt.aspect)
            for alt in native_renders(brief, job)
        )
    return CreativeToPublish(
        variant_id=variant["variant_id"],
        brief=brief.name,
        image_path=main.image_path,
        link_url=brief.product.url,
        message=brief.product.message,
        factors=VariantFactors.of(variant).as_dict(),
        aspect=variant["aspect"],
        video_path=main.video_path,
        alternates=alternates,
    )


def _asset(render_dir: Path, aspect: str) -> Asset:
    """One render folder as an ad asset: its still, and its video when it is a turntable."""
    manifest = RenderManifest.load(render_dir)
    video = manifest.files.get("mp4")
    return Asset(aspect, render_dir / manifest.still_jpeg, render_dir / video if video else None)


def alt_text(brief: Brief, variant: dict) -> str:
    """What the render shows, for people using screen readers (Shopify's alt text)."""
    return f"{brief.brand} product in a {variant['template']} scene on a {variant['colour']} backdrop"


def _to_publish(brief: Brief, ledger: Ledger, channel: str) -> list[dict]:
    generation = ledger.current_generation(brief.name)
    if generation is None:
        return []
    live = ledger.live(brief.name, generation)
    done = set(ledger.publications(brief.name, channel)["variant_id"])
    ready = live[(live["render_status"] == "rendered") & live["retired_reason"].isna() & ~live["variant_id"].isin(done)]
    return ready.to_dict("records")


def publish(brief: Brief, ledger: Ledger, meta: MetaAds, artifacts: ArtifactStore, actor: str) -> list[dict]:
    """Publish every rendered live variant not yet on Meta; an intent is recorded before creating.

    Nothing rendered yet is a normal day; a paused brief publishes nothing."""
    if ledger.is_paused(brief.name):
        return []
    todo = _to_publish(brief, ledger, "meta")
    if todo and brief.meta.campaign_spend_cap is not None:  # the platform's backstop, before any new ad
        meta.set_campaign_spend_cap(int(round(brief.meta.campaign_spend_cap * 100)))
    out = []
    for v in todo:
        ledger.record_intent(brief.name, v["variant_id"], "meta")
        # created paused at the platform minimum; `allocate` sets the real budget and status
        with ledger.lease(brief.name, v["variant_id"], "meta", actor):
            pub = meta.publish(creative_for(brief, v, artifacts), daily_budget_cents=MIN_BUDGET_CENTS, activate=False)
        ids = {k: getattr(pub, k) for k in ("ad_id", "adset_id", "creative_id", "image_hash", "video_id", "status")}
        ledger.record_publication(brief.name, v["variant_id"], "meta", **ids, daily_budget_cents=MIN_BUDGET_CENTS)
        ledger.log_action(
            Action(
                brief.name,
                "publish",
                actor,
                f"Meta ad {pub.ad_id} created PAUSED",
                {"variant_id": v["variant_id"], "channel": "meta", **ids},
            )
        )
        out.append(pub.__dict__)
    return out


def publish_shopify(
    brief: Brief,
    ledger: Ledger,
    store: EventStore,
    shop: ShopifyAdmin,
    artifacts: ArtifactStore,
    actor: str,
    seed: int = 0,
) -> list[dict]:
    """Attach every rendered live variant's still to the brief's product; feature the leading variant.

    The leader is the live variant with the highest posterior of the brief's goal; before any evidence the
    product keeps its own featured image.
    """
    if ledger.is_paused(brief.name):
        return []
    product = brief.shopify.product_id
    out = []
    for v in _to_publish(brief, ledger, "shopify"):
        ledger.record_intent(brief.name, v["variant_id"], "shopify")
        creative = creative_for(brief, v, artifacts)
        media = shop.attach(product, RenderToAttach(v["variant_id"], creative.image_path, alt_text(brief, v)))
        ledger.record_publication(
            brief.name, v["variant_id"], "shopify", media_id=media.media_id, product_id=product, status=media.status
        )
        ledger.log_action(
            Action(
                brief.name,
                "publish",
                actor,
                f"Shopify media {media.media_id} on {product}",
                {"variant_id": v["variant_id"], "channel": "shopify"},
            )
        )
        out.append(media.__dict__)
    if brief.shopify.feature_best and ledger.current_generation(brief.name):
        board, _ = current_leaderboard(brief, ledger, store, seed)
        attached = ledger.publications(brief.name, "shopify").set_index("variant_id")
        leaders = [v for v in board["variant_id"] if v in attached.index]
        if leaders:
            shop.feature(product, attached.loc[leaders[0], "media_id"])
            out.append({"featured": leaders[0]})
    return out


def publish_model_3d(brief: Brief, ledger: Ledger, shop: ShopifyAdmin, models_root: Path, actor: str) -> dict | None:
    """Show the product's 3D model on its Shopify page when the brief asks (``shopify.model_3d``): exported
    by Blender once per model, orientation and colourway, attached once, recorded in the ledger.

    A model that cannot be exported or that Shopify refuses is recorded FAILED with the reason and tried
    again the next day; it never stops the renders' own publishing. Returns what happened, or None."""
    if not (brief.shopify and brief.shopify.model_3d) or ledger.is_paused(brief.name):
        return None
    product = brief.product
    try:
        model = export_product_model(
            product.model, product.orientation, product.colourway, models_root, product.height_m
        )
    except ModelError as exc:
        return _model_3d_failed(brief, ledger, actor, "unexported", exc)
    done = ledger.publications(brief.name, MODEL_3D_CHANNEL)
    if ((done["variant_id"] == model.key) & (done["status"] == "READY")).any():
        return None
    ledger.record_intent(brief.name, model.key, MODEL_3D_CHANNEL)
    alt = f"{brief.brand} product, 3D model"
    try:
        attached = shop.attach_model(brief.shopify.product_id, ModelToAttach(model.key, model.glb, model.usdz, alt))
    except ShopifyError as exc:
        return _model_3d_failed(brief, ledger, actor, model.key, exc)
    ledger.record_publication(brief.name, model.key, MODEL_3D_CHANNEL, media_id=attached.media_id,
                              product_id=attached.product_id, status=attached.status)  # fmt: skip
    ledger.log_action(
        Action(
            brief.name,
            "publish",
            actor,
            f"Shopify 3D model {attached.media_id} on {attached.product_id} ({model.triangles} triangles, "
            f"{' x '.join(f'{x * 100:.1f}' for x in model.size_m)} cm), AR file {attached.file_id}",
            {"channel": MODEL_3D_CHANNEL, "key": model.key, "media_id": attached.media_id, "file_id": attached.file_id},
        )
    )
    return {"model_3d": attached.status, "media_id": attached.media_id, "sources": attached.sources}


def _model_3d_failed(brief: Brief, ledger: Ledger, actor: str, key: str, exc: Exception) -> dict:
    ledger.record_intent(brief.name, key, MODEL_3D_CHANNEL)
    ledger.record_publication(brief.name, key, MODEL_3D_CHANNEL, product_id=brief.shopify.product_id, status="FAILED")
    ledger.log_action(
        Action(brief.name, "publish", actor, f"3D model not shown: {exc}", {"channel": MODEL_3D_CHANNEL, "key": key})
    )
    return {"model_3d": "FAILED", "error": str(exc)}


def review(brief: Brief, ledger: Ledger, meta: MetaAds, actor: str) -> list[AdReview]:
    """Ask Meta where each live ad stands; a disapproved ad is paused and its variant retired, with the reason."""
    generation = ledger.current_generation(brief.name)
    if generation is None:
        return []
    live = ledger.live(brief.name, generation)
    pubs = ledger.publications(brief.name, "meta")
    pubs = pubs[pubs["variant_id"].isin(live["variant_id"]) & (pubs["status"] != "DISAPPROVED")]
    if pubs.empty:
        return []
    reviews = meta.review(list(pubs["ad_id"]))
    variant_of = dict(zip(pubs["ad_id"], pubs["variant_id"]))
    for r in reviews:
        if r.disapproved:
            variant = variant_of[r.ad_id]
            meta.set_ad_status(r.ad_id, active=False)  # it cannot deliver; paused, it never will if reinstated
            ledger.set_status(brief.name, variant, "meta", "DISAPPROVED")
            ledger.retire(brief.name, variant, f"Meta disapproved ad {r.ad_id}: {r.reason}")
            ledger.log_action(
                Action(
                    brief.name, "retire", actor, f"Meta disapproved ad {r.ad_id}: {r.reason}", {"variant_id": variant}
                )
            )
            ledger.log_decisions(
                brief.name,
                generation,
                [Decision("retire", variant, None, 0.0, r.reason, policy_version="meta-review")],
            )
        else:
            ledger.set_status(brief.name, variant_of[r.ad_id], "meta", r.effective_status)
    return reviews


def allocate(
    brief: Brief,
    ledger: Ledger,
    store: EventStore,
    meta: MetaAds,
    today: date,
    actor: str,
    seed: int = 0,
    final: bool = False,
) -> pd.Series:
    """Split today's budget over the live variants by P(best); pause everything else we published.

    Runs every day: the allocation follows the evidence daily, while creatives change per generation.
    A paused brief keeps every one of its ads and ad sets PAUSED and raises no budget; a day with nothing
    published yet allocates nothing. Either way the day is recorded as served (a paused one is not counted
    towards the generation). ``final`` (the close of a bounded run) pauses every ad: the campaign is over.
    """
    generation = ledger.current_generation(brief.name)
    if generation is None:
        return pd.Series(dtype=float)
    pubs = ledger.publications(brief.name, "meta").set_index("variant_id")
    paused = ledger.is_paused(brief.name)
    if final or paused:  # the campaign is over, or a person paused it: nothing spends
        _pause_every_ad(brief, ledger, meta, pubs)
        if paused and not final:
            ledger.record_day(brief.name, generation, today, paused=True)
        reason = "last generation served" if final else "brief paused"
        ledger.log_action(Action(brief.name, "allocate", actor, f"{reason}: every ad PAUSED",
                                 {"day": today.isoformat(), "ads_paused": len(pubs)}))  # fmt: skip
        return pd.Series(dtype=float)
    live = ledger.live(brief.name, generation)
    live = live[live["variant_id"].isin(pubs.index) & live["retired_reason"].isna()]
    out_of_season = [v for v, t in zip(live["variant_id"], live["template"]) if not get_template(t).in_season(today)]
    live = live[~live["variant_id"].isin(out_of_season)]  # its season is over: paused below with the unpublished
    if live.empty:
        if out_of_season:
            _pause_every_ad(brief, ledger, meta, pubs)
        ledger.record_day(brief.name, generation, today)
        why = "nothing in season: every ad PAUSED" if out_of_season else "nothing published yet"
        ledger.log_action(Action(brief.name, "allocate", actor, why, {"day": today.isoformat()}))
        return pd.Series(dtype=float)
    live_ads = pubs.loc[pubs.index.isin(live["variant_id"]), "ad_id"].tolist()  # the live ads' rows, in SQL
    events = planning.evidence(brief, live, store.variant_daily(live_ads))
    prior = planning.catalog_prior_means(brief, live, events, catalog_evidence(brief, ledger, store), today)
    shares = planning.allocate(brief, events, np.random.default_rng([seed, generation, today.toordinal()]), prior)
    budgets = planning.budgets_in_cents(brief, shares, previous_budgets(ledger, brief))
    ran = planning.logged_propensities(budgets)
    plan = planning.adset_plan(pubs, budgets, brief.autoplay.activate, MIN_BUDGET_CENTS)
    for variant_id, ad in plan.ads.items():
        meta.set_ad_status(ad.ad_id, ad.active)
        ledger.set_status(brief.name, variant_id, "meta", "ACTIVE" if ad.active else "PAUSED", ad.budget_cents)
    for adset_id, adset in plan.adsets.items():  # an ad set the brief names holds several variants' shares
        meta.set_adset(adset_id, adset.budget_cents, adset.active)
    ledger.log_decisions(
        brief.name,
        generation,
        [
            Decision(
                "allocate",
                vid,
                None,
                float(ran[vid]),
                policy_version=f"ts-g{generation}",
                details={"daily_budget_cents": int(budgets[vid]), "day": today.isoformat(), "thompson_share": s},
            )
            for vid, s in shares.items()
        ],
    )
    ledger.record_day(brief.name, generation, today)
    ledger.log_action(
        Action(
            brief.name,
            "allocate",
            actor,
            f"{len(shares)} live variants by P(best)",
            {
                "day": today.isoformat(),
                "budgets_cents": {k: int(v) for k, v in budgets.items()},
                "total_cents": int(budgets.sum()),
                "cap_cents": int(round(brief.daily_budget * 100)),
            },
        )
    )
    return shares


def _pause_every_ad(brief: Brief, ledger: Ledger, meta: MetaAds, pubs: pd.DataFrame) -> None:
    """Every published ad of the brief PAUSED and every ad set of it paused, its budget left as it was (no
    budget is written, so none is raised); ads already PAUSED or DISAPPROVED are not written again."""
    for variant_id, pub in pubs.iterrows():
        if pub["status"] not in ("PAUSED", "DISAPPROVED"):
            meta.set_ad_status(pub["ad_id"], False)
            ledger.set_status(brief.name, variant_id, "meta", "PAUSED")
    for adset_id in pubs["adset_id"].dropna().unique():
        meta.set_adset(adset_id, None, False)


def previous_budgets(ledger: Ledger, brief: Brief) -> pd.Series:
    """The daily budget (cents) each variant was last given, from the logged allocation decisions."""
    decisions = ledger.decisions(brief.name)
    allocations = decisions[decisions["kind"] == "allocate"]
    if allocations.empty:
        return pd.Series(dtype=float)
    latest = allocations.groupby("variant_id").tail(1)
    return pd.Series(
        [json.loads(f)["daily_budget_cents"] for f in latest["factors"]], index=latest["variant_id"], dtype=float
    )


def pull_insights(brief: Brief, ledger: Ledger, meta: MetaAds, producer: EventProducer, today: date) -> int:
    """Read back this brief's daily ad insights up to yesterday and produce them to Kafka as metric snapshots."""
    gens = ledger.generations(brief.name).dropna(subset=["since"])
    published = ledger.publications(brief.name, "meta")
    if gens.empty or published.empty:
        return 0
    since = max(pd.Timestamp(gens["since"].min()).date(), today - timedelta(days=INSIGHTS_LOOKBACK_DAYS))
    until = today - timedelta(days=1)
    if until < since:
        return 0
    variant_of = dict(zip(published["ad_id"], published["variant_id"]))
    rows = meta.insights(since, until, brief.meta.attribution_windows, ad_ids=list(variant_of))
    return producer.send(snapshots_from_insights(rows, variant_of, channel="meta"))


def brief_daily(ledger: Ledger, store: EventStore, brief: Brief) -> pd.DataFrame:
    """The brief's own evidence per variant and day: from its ads only, never another brief's."""
    return ads_daily(ledger, store, brief.name)


def ads_daily(ledger: Ledger, store: EventStore, name: str) -> pd.DataFrame:
    """Evidence per variant and day of the Meta ads the ledger records for brief ``name``."""
    return store.variant_daily(ledger.publications(name, "meta")["ad_id"].tolist())


def catalog_evidence(brief: Brief, ledger: Ledger, store: EventStore) -> pd.DataFrame | None:
    """The evidence of every other brief in the deployment, per variant and day, in ``brief``'s goal, with
    each row's ``brand`` and ``product`` (its brief): what the pooled model learns across the catalog."""
    frames = []
    for row in ledger.briefs().itertuples():
        if row.brief == brief.name:
            continue
        variants = ledger.variants(row.brief)
        variants = variants[variants["render_status"] == "rendered"]
        daily = ads_daily(ledger, store, row.brief)
        if variants.empty or daily.empty:
            continue
        frame = planning.evidence(brief, variants, daily)
        frames.append(frame[frame["trials"] > 0].assign(brand=row.brand, product=row.brief))
    return pd.concat(frames, ignore_index=True) if frames else None


def variant_evidence(brief: Brief, ledger: Ledger, store: EventStore, goal: str) -> pd.DataFrame:
    """One row per rendered variant of the brief: brand, brief, its factors, and ``goal``'s successes and
    trials over everything its ads served (zero for a variant not served yet)."""
    num, den = planning.GOAL_COLUMNS[goal]
    variants = ledger.variants(brief.name)
    variants = variants[variants["render_status"] == "rendered"]
    daily = brief_daily(ledger, store, brief)
    totals = daily.groupby("variant_id")[[num, den]].sum() if len(daily) else pd.DataFrame(columns=[num, den])
    totals = totals.astype(float)
    frame = variants[["variant_id", "template", "colour", "aspect"]].merge(
        totals.rename(columns={num: "successes", den: "trials"}), left_on="variant_id", right_index=True, how="left"
    )
    return frame.fillna({"successes": 0.0, "trials": 0.0}).assign(brand=brief.brand, brief=brief.name)


def ingest(ingestor: EventIngestor) -> IngestStats:
    """Read the topic up to the end offsets it has now (no idle wait), into the store."""
    return ingestor.run(until_idle=True)


def traffic_by_generation(ledger: Ledger, store: EventStore, brief: Brief) -> pd.DataFrame:
    """Impressions per generation and live variant, over each generation's window of days."""
    daily = brief_daily(ledger, store, brief)
    gens = ledger.generations(brief.name).dropna(subset=["since"])
    live = ledger.live_history(brief.name)
    rows = []
    for g in gens.itertuples():
        window = daily[(daily["day"] >= pd.Timestamp(g.since)) & (daily["day"] <= pd.Timestamp(g.until))]
        imps = window.groupby("variant_id")["impressions"].sum()
        for vid in live[live["generation"] == g.generation]["variant_id"]:
            rows.append({"generation": g.generation, "variant_id": vid, "impressions": float(imps.get(vid, 0.0))})
    df = pd.DataFrame(rows, columns=["generation", "variant_id", "impressions"])
    totals = df.groupby("generation")["impressions"].transform("sum")
    df["share"] = np.where(totals > 0, df["impressions"] / totals.where(totals > 0, 1), 0.0)
    return df


def best_live_by_posterior(board: pd.DataFrame, traffic: pd.DataFrame) -> pd.DataFrame:
    """Per generation: the live variant the posterior ranks best among that generation's, and its traffic
    share (the learning curve; the demo's table picks by the sandbox's true rates instead)."""
    rank = dict(zip(board["variant_id"], board["posterior_mean"]))
    rows = []
    for generation, live in traffic.groupby("generation"):
        live = live.assign(score=live["variant_id"].map(rank).fillna(-1.0))
        top = live.loc[live["score"].idxmax()]
        rows.append({"generation": int(generation), "variant_id": top["variant_id"], "best_share": top["share"]})
    return pd.DataFrame(rows, columns=["generation", "variant_id", "best_share"])


def train(
    brief: Brief,
    ledger: Ledger,
    store: EventStore,
    tracking: TrackingTarget,
    artifacts: ArtifactStore,
    sheets_dir: Path,
    actor: str,
    seed: int = 0,
) -> dict:
    """Fit the policy on everything stored, log it to MLflow with leaderboard and contact sheet."""
    generation = ledger.current_generation(brief.name)
    board, traffic = current_leaderboard(brief, ledger, store, seed)
    latest = traffic[traffic["generation"] == generation].set_index("variant_id")["share"]
    best = board.iloc[0]["variant_id"]
    history = best_live_by_posterior(board, traffic)
    sheet = generation_sheet(brief, ledger, board, generation, artifacts, sheets_dir)
    evidence = variant_evidence(brief, ledger, store, brief.goal)
    lifts = reporting.pooled_lifts(evidence, [(brief.name, brief.brand, brief.name)])
    lift_chart = sheet.with_name(f"factor-lifts-{generation}.png")
    if len(lifts):
        reporting.lift_plot(lifts, lift_chart)
    num, den = planning.GOAL_COLUMNS[brief.goal]
    model = fit_policy_model(brief, ledger, store, seed)
    live_ids = list(latest.index)
    expected_regret = (
        model.variants.subset(live_ids).expected_regret(latest.to_numpy()) if len(live_ids) else float("nan")
    )
    run_id = log_training(
        tracking,
        run_name=f"{brief.name}-g{generation}",
        params={
            "brief": brief.name,
            "generation": generation,
            "goal": brief.goal,
            "policy": "beta-thompson (allocation) + factorised thompson (proposals)",
            "half_life_days": brief.autoplay.half_life_days,
            "conversion_delay_days": brief.autoplay.conversion_delay_days,
            "live_variants": brief.autoplay.live_variants,
            "exploration_floor": brief.autoplay.exploration_floor,
            "max_budget_step": brief.autoplay.max_budget_step,
            "palette_max_delta_e": brief.autoplay.palette_max_delta_e,
            "daily_budget": brief.daily_budget,
        },
        metrics={
            "variants": len(board),
            f"total_{den}": board[den].sum(),
            f"total_{num}": board[num].sum(),
            "best_posterior_mean": board.iloc[0]["posterior_mean"],
            "best_p_best": board.iloc[0]["p_best"],
            "best_traffic_share": float(latest.get(best, 0.0)),
            "expected_regret_per_trial": expected_regret,
        },  # per-variant figures are the leaderboard table, not a metric each
        step=generation,
        board=board,
        history=history,
        images=[sheet],
        tables={"factor_lifts.csv": lifts},
        plots=[lift_chart] if len(lifts) else [],
        tags={"autoplay.brief": brief.name, "autoplay.generation": str(generation)},
        policy_model=model,
        registered_name=registered_model_name(brief),
    )
    ledger.set_policy_run(brief.name, generation, run_id)
    ledger.log_action(
        Action(
            brief.name,
            "train",
            actor,
            f"generation {generation} trained (MLflow run {run_id})",
            {"generation": generation, "run_id": run_id},
        )
    )
    return {"run_id": run_id, "board": board, "sheet": sheet, "generation": generation}


def registered_model_name(brief: Brief) -> str:
    return f"autoplay-{brief.name}"


def fit_policy_model(brief: Brief, ledger: Ledger, store: EventStore, seed: int = 0) -> PolicyModel:
    """Both policies fitted on everything stored: per-variant allocation and the factorised proposer."""
    from experiments.policy_model import PolicyModel

    variants = ledger.variants(brief.name)
    variants = variants[variants["render_status"] == "rendered"].reset_index(drop=True)
    events = planning.evidence(brief, variants, brief_daily(ledger, store, brief))
    rng = np.random.default_rng([seed, 3])
    arms = planning.totals(events, variants)
    return PolicyModel(
        planning.variant_policy(brief, arms, rng).fit(events),
        planning.factorised_policy(brief, rng).fit(events),
        brief.autoplay.exploration_floor,
    )


def logged_allocations(brief: Brief, ledger: Ledger, store: EventStore) -> pd.DataFrame:
    """Every logged allocation joined to what it produced: variant, day, logging share, successes, trials."""
    decisions = ledger.decisions(brief.name)
    alloc = decisions[decisions["kind"] == "allocate"].copy()
    if alloc.empty:
        return pd.DataFrame(columns=["variant_id", "day", "propensity", "successes", "trials"])
    alloc["day"] = [json.loads(f)["day"] for f in alloc["factors"]]
    alloc = alloc.drop_duplicates(["variant_id", "day"], keep="last")
    num, den = planning.GOAL_COLUMNS[brief.goal]
    daily = brief_daily(ledger, store, brief)
    daily = daily.assign(day=pd.to_datetime(daily["day"]).dt.strftime("%Y-%m-%d"))
    out = alloc[["variant_id", "day", "propensity"]].merge(
        daily[["variant_id", "day", num, den]], on=["variant_id", "day"], how="inner"
    )
    return out.rename(columns={num: "successes", den: "trials"}).fillna(0.0)


def offline_estimate(model, log: pd.DataFrame) -> evaluation.Estimate:
    """SNIPS value of ``model`` (a loaded pyfunc) on the logged allocations (one row per variant and day,
    standing for its trials)."""
    target = []
    for _, day in log.groupby("day", sort=False):
        # variants born after the model was trained get its prior, as they would have had it live
        shares = model.predict(day[["variant_id"]], params={"action": "allocate", "unknown_variants": "prior"})
        target.append(day["variant_id"].map(dict(zip(shares["variant_id"], shares["share"]))))
    log = log.assign(target=pd.concat(target).reindex(log.index))
    log = log[log["trials"].round() > 0]
    trials = log["trials"].round().to_numpy()
    return evaluation.snips_counts(log["successes"].round(), trials, log["propensity"], log["target"])


def promote(brief: Brief, ledger: Ledger, store: EventStore, tracking: TrackingTarget, actor: str) -> dict:
    """Make the challenger champion when its offline estimate beats the champion's; record the decision.

    The decision goes to the model version's tags, the training run's metrics and the ledger's decisions.
    """
    import mlflow

    tracking.activate()
    client = mlflow.MlflowClient()
    name = registered_model_name(brief)
    challenger = client.get_model_version_by_alias(name, "challenger")
    try:
        champion = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        champion = None
    log = logged_allocations(brief, ledger, store)
    if log.empty or log["trials"].sum() == 0:
        raise RuntimeError(f"no logged allocations with outcomes for brief {brief.name!r} to evaluate on")
    ours = offline_estimate(mlflow.pyfunc.load_model(f"models:/{name}@challenger"), log)
    theirs = None
    if champion is not None and champion.version != challenger.version:
        theirs = offline_estimate(mlflow.pyfunc.load_model(f"models:/{name}@champion"), log)
    promoted = champion is None or (theirs is not None and ours.value > theirs.value)
    if promoted:
        client.set_registered_model_alias(name, "champion", challenger.version)
    verdict = (
        f"promoted v{challenger.version}"
        if promoted
        else f"kept champion v{champion.version}"
        + (f": challenger {ours.value:.5f} <= champion {theirs.value:.5f}" if theirs else "")
    )
    client.set_model_version_tag(name, challenger.version, "autoplay.promotion", verdict)
    metrics = {"offline_snips_challenger": ours.value, "offline_snips_challenger_low": ours.low}
    metrics["offline_snips_challenger_high"] = ours.high
    if theirs is not None:
        metrics |= {"offline_snips_champion": theirs.value, "offline_snips_champion_low": theirs.low}
        metrics["offline_snips_champion_high"] = theirs.high
    for key, value in metrics.items():
        client.log_metric(challenger.run_id, key, value)
    ledger.log_decisions(
        brief.name,
        ledger.current_generation(brief.name),
        [
            Decision(
                "promote" if promoted else "keep_champion",
                None,
                None,
                1.0,
                policy_version=f"{name}/v{challenger.version}",
                details={"verdict": verdict, **metrics},
            )
        ],
    )
    ledger.log_action(
        Action(
            brief.name,
            "promote" if promoted else "keep_champion",
            actor,
            verdict,
            {"model": name, "challenger_version": challenger.version},
        )
    )
    return {
        "promoted": promoted,
        "verdict": verdict,
        "challenger": ours,
        "champion": theirs,
        "challenger_version": challenger.version,
        "champion_version": challenger.version if promoted else champion.version,
    }


def current_leaderboard(
    brief: Brief, ledger: Ledger, store: EventStore, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The leaderboard of every rendered variant, with traffic shares of the latest generation."""
    generation = ledger.current_generation(brief.name)
    variants = ledger.variants(brief.name)
    variants = variants[variants["render_status"] == "rendered"].reset_index(drop=True)
    traffic = traffic_by_generation(ledger, store, brief)
    latest = traffic[traffic["generation"] == generation].set_index("variant_id")["share"]
    board = planning.leaderboard(
        brief,
        variants,
        brief_daily(ledger, store, brief),
        latest,
        np.random.default_rng([seed, 0 if generation is None else generation, 2]),
    )
    return board, traffic


def generation_sheet(
    brief: Brief, ledger: Ledger, board: pd.DataFrame, generation: int, artifacts: ArtifactStore, sheets_dir: Path
) -> Path:
    live = ledger.live(brief.name, generation)
    live = live[live["render_status"] == "rendered"]
    stats = board.set_index("variant_id")
    items = []
    for v in live.itertuples():
        rate = stats.loc[v.variant_id, brief.goal] if v.variant_id in stats.index else 0.0
        folder = artifacts.local(v.render_dir)
        still = RenderManifest.load(folder).still  # a turntable shows its poster
        kind = " turntable" if v.kind == "turntable" else ""
        items.append(
            (
                folder / still,
                f"{v.template} {v.colour} {v.aspect}{kind}\n{v.variant_id}  {brief.goal} {rate:.2%}",
            )
        )
    return contact_sheet(
        items,
        Path(sheets_dir) / brief.name / f"generation-{generation}.png",
        title=f"{brief.brand} / {brief.name}: generation {generation}",
    )
