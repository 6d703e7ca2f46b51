"""The loop's ledger, in the same DuckDB file as the events: briefs, variants, generations, days served,
what was published, the controls (pause/resume), the audit log of actions, and the decision log (every
plan and allocation choice with its propensity).

Every table is keyed by brief: no query of one brief's rows can return another brief's. A variant id is a
content hash of the picture, so two briefs on the same product may share one; their rows stay apart, and
only the render (the same picture) is shared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from connectors.event_store import EventStore
from creative.decision import Decision

SCHEMA = """
create table if not exists briefs (
    brief varchar primary key, brand varchar not null, path varchar not null, spec json not null,
    seen_at timestamptz default now()
);
create table if not exists variants (
    brief varchar not null, variant_id varchar not null, template varchar not null, colour varchar not null,
    aspect varchar not null, kind varchar not null default 'still', profile varchar not null,
    born_generation integer not null, render_dir varchar, render_status varchar default 'planned',
    render_error varchar, retired_reason varchar, spec json,
    primary key (brief, variant_id)
);
create table if not exists generations (
    brief varchar not null, generation integer not null, opened_on date, since date, until date,
    policy_run_id varchar,
    primary key (brief, generation)
);
create table if not exists live_variants (
    brief varchar not null, generation integer not null, variant_id varchar not null,
    primary key (brief, generation, variant_id)
);
create table if not exists loop_days (
    brief varchar not null, day date not null, generation integer not null, paused boolean not null default false,
    done_at timestamptz default now(),
    primary key (brief, day)
);
create table if not exists publications (
    brief varchar not null, variant_id varchar not null, channel varchar not null, state varchar not null,
    ad_id varchar, adset_id varchar, creative_id varchar, image_hash varchar, video_id varchar,
    media_id varchar, product_id varchar, status varchar, daily_budget_cents bigint,
    updated_at timestamptz default now(),
    primary key (brief, variant_id, channel)
);
create table if not exists decisions (
    brief varchar not null, generation integer not null, kind varchar not null, variant_id varchar,
    factors json, propensity double not null, policy_version varchar, made_at timestamptz default now()
);
create table if not exists controls (
    brief varchar primary key, paused boolean not null, actor varchar not null, reason varchar,
    changed_at timestamptz default now()
);
create table if not exists leases (
    brief varchar not null, variant_id varchar not null, channel varchar not null, owner varchar not null,
    taken_at timestamptz default now(),
    primary key (brief, variant_id, channel)
);
create table if not exists brief_versions (
    brief varchar not null, version integer not null, yaml varchar not null, actor varchar not null,
    saved_at timestamptz default now(),
    primary key (brief, version)
);
create table if not exists actions (
    "at" timestamptz default now(), brief varchar not null, action varchar not null, actor varchar not null,
    reason varchar, details json
);
"""

#: Every brief at once, for ``pause --all`` and ``resume --all``.
ALL_BRIEFS = "*"
#: The publications channel of a brief's 3D model on its Shopify product; the model's key stands as its variant.
MODEL_3D_CHANNEL = "shopify_model_3d"


class LeaseBusy(RuntimeError):
    """Another process holds the lease on publishing this variant, for longer than we were willing to wait."""


class LedgerLayoutError(RuntimeError):
    """The store was written by an older autoplay whose ledger was not keyed by brief."""


@dataclass(frozen=True)
class Action:
    """One line of the audit log: what was done, to which brief, by whom, and why."""

    brief: str
    action: str
    actor: str
    reason: str = ""
    details: dict | None = None


class Ledger:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        with store.connect() as con:
            old = con.execute(
                """select count(*) from information_schema.columns
                   where table_name = 'publications' and column_name = 'brief'"""
            ).fetchone()[0]
            has_publications = con.execute(
                "select count(*) from information_schema.tables where table_name = 'publications'"
            ).fetchone()[0]
            if has_publications and not old:
                raise LedgerLayoutError(
                    f"{store.path}: its ledger predates briefs as keys (one brief per store); "
                    "move the file away and let the loop start a new one"
                )
            con.execute(SCHEMA)

    def _query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.store.connect() as con:
            return con.execute(sql, params or []).df()

    def _execute(self, sql: str, params: list | None = None) -> None:
        with self.store.connect() as con:
            con.execute(sql, params or [])

    # briefs -----------------------------------------------------------------------------------------
    def record_brief(self, brief: str, brand: str, path: str, spec: dict) -> None:
        """The brief as last used: what withdrawing a removed brief needs (its account) when its file is gone."""
        self._execute(
            """insert into briefs (brief, brand, path, spec) values (?, ?, ?, ?)
               on conflict (brief) do update set brand = excluded.brand, path = excluded.path,
               spec = excluded.spec, seen_at = now()""",
            [brief, brand, path, json.dumps(spec, default=str)],
        )

    def briefs(self) -> pd.DataFrame:
        return self._query("select * from briefs order by brief")

    def brief_spec(self, brief: str) -> dict | None:
        df = self._query("select spec from briefs where brief = ?", [brief])
        return None if df.empty else json.loads(df.iloc[0]["spec"])

    def record_brief_version(self, brief: str, text: str, actor: str) -> int:
        """Keep this text of the brief's file as its next version (who saved it, when); an unchanged text
        keeps the version it has. Returns the version number."""
        with self.store.connect() as con:
            last = con.execute(
                "select version, yaml from brief_versions where brief = ? order by version desc limit 1", [brief]
            ).fetchone()
            if last is not None and last[1] == text:
                return int(last[0])
            version = 1 if last is None else int(last[0]) + 1
            con.execute("insert into brief_versions (brief, version, yaml, actor) values (?, ?, ?, ?)",
                        [brief, version, text, actor])  # fmt: skip
            return version

    def brief_versions(self, brief: str) -> pd.DataFrame:
        return self._query("select * from brief_versions where brief = ? order by version desc", [brief])

    # generations ----------------------------------------------------------------------------------
    def current_generation(self, brief: str) -> int | None:
        with self.store.connect() as con:
            return con.execute("select max(generation) from generations where brief = ?", [brief]).fetchone()[0]

    def start_generation(
        self,
        brief: str,
        generation: int,
        variants: pd.DataFrame,
        decisions: list[Decision],
        opened_on: date | None = None,
    ) -> None:
        """Record a new generation's live variants (rendering to do) and the decisions that chose them."""
        with self.store.connect() as con:
            con.execute("begin")
            con.execute(
                "insert into generations (brief, generation, opened_on) values (?, ?, ?)",
                [brief, generation, opened_on],
            )
            for v in variants.itertuples():
                con.execute(
                    """insert into variants (brief, variant_id, template, colour, aspect, kind, profile,
                               born_generation, spec) values (?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing""",
                    [
                        brief,
                        v.variant_id,
                        v.template,
                        v.colour,
                        v.aspect,
                        getattr(v, "kind", "still"),
                        v.profile,
                        generation,
                        getattr(v, "spec", None),
                    ],
                )
                con.execute("insert into live_variants values (?, ?, ?)", [brief, generation, v.variant_id])
            self._log_decisions(con, brief, generation, decisions)
            con.execute("commit")

    def record_day(self, brief: str, generation: int, day: date, paused: bool = False) -> None:
        """Mark ``day`` as done for this brief; a day served (not paused) joins the generation's window."""
        with self.store.connect() as con:
            con.execute("begin")
            con.execute(
                "insert into loop_days (brief, day, generation, paused) values (?, ?, ?, ?) on conflict do nothing",
                [brief, day, generation, paused],
            )
            if paused:
                con.execute("commit")
                return
            con.execute(
                """update generations set since = coalesce(since, ?), until = ?
                   where brief = ? and generation = ?""",
                [day, day, brief, generation],
            )
            con.execute("commit")

    def days(self, brief: str) -> pd.DataFrame:
        return self._query("select day, generation, paused from loop_days where brief = ? order by day", [brief])

    def set_policy_run(self, brief: str, generation: int, run_id: str) -> None:
        self._execute(
            "update generations set policy_run_id = ? where brief = ? and generation = ?", [run_id, brief, generation]
        )

    def generations(self, brief: str) -> pd.DataFrame:
        return self._query("select * from generations where brief = ? order by generation", [brief])

    # variants ---------------------------------------------------------------------------------------
    def variant(self, brief: str, variant_id: str) -> dict:
        df = self._query("select * from variants where brief = ? and variant_id = ?", [brief, variant_id])
        if df.empty:
            raise KeyError(f"brief {brief}: unknown variant {variant_id}")
        return df.iloc[0].to_dict()

    def variants(self, brief: str) -> pd.DataFrame:
        return self._query("select * from variants where brief = ? order by born_generation, variant_id", [brief])

    def render_spec(self, variant_id: str) -> str:
        """The render job planned for a variant (JSON), whichever brief planned it: the same picture."""
        df = self._query("select spec from variants where variant_id = ? and spec is not null limit 1", [variant_id])
        if df.empty:
            raise KeyError(f"unknown variant {variant_id}: no brief planned it")
        return df.iloc[0]["spec"]

    def briefs_of(self, variant_ids: list[str]) -> list[str]:
        """The briefs that planned any of these variants."""
        df = self._query("select distinct brief from variants where list_contains(?, variant_id)", [variant_ids])
        return df["brief"].tolist()

    def planned_by(self, variant_ids: list[str]) -> dict[str, list[str]]:
        """Each variant's briefs: a variant is one picture, which several briefs may have planned."""
        df = self._query(
            "select variant_id, brief from variants where list_contains(?, variant_id) order by brief", [variant_ids]
        )
        return df.groupby("variant_id")["brief"].apply(list).to_dict()

    def retire(self, brief: str, variant_id: str, reason: str) -> None:
        """Take a variant out of the loop for good (a platform refused it); the reason is kept."""
        self._execute(
            "update variants set retired_reason = ? where brief = ? and variant_id = ?", [reason, brief, variant_id]
        )

    def live(self, brief: str, generation: int) -> pd.DataFrame:
        return self._query(
            """select v.* from live_variants l join variants v using (brief, variant_id)
               where l.brief = ? and l.generation = ? order by v.variant_id""",
            [brief, generation],
        )

    def live_history(self, brief: str) -> pd.DataFrame:
        return self._query("select generation, variant_id from live_variants where brief = ?", [brief])

    def set_render(self, variant_id: str, status: str, render_dir: str | None, error: str | None = None) -> None:
        """A render is the same picture for every brief that planned this variant: all their rows follow it."""
        self._execute(
            "update variants set render_status = ?, render_dir = ?, render_error = ? where variant_id = ?",
            [status, render_dir, error, variant_id],
        )

    # publications -----------------------------------------------------------------------------------
    def record_intent(self, brief: str, variant_id: str, channel: str) -> None:
        """Written before any create call, so a crash mid-publish is visible and the retry looks up first."""
        self._execute(
            """insert into publications (brief, variant_id, channel, state) values (?, ?, ?, 'intent')
               on conflict do nothing""",
            [brief, variant_id, channel],
        )

    PUBLICATION_IDS = (
        "ad_id",
        "adset_id",
        "creative_id",
        "image_hash",
        "video_id",
        "media_id",
        "product_id",
        "status",
        "daily_budget_cents",
    )

    def record_publication(self, brief: str, variant_id: str, channel: str, **ids: str | int | None) -> None:
        """What a channel made for a variant: Meta's ad, ad set, creative, image and video; Shopify's media."""
        unknown = set(ids) - set(self.PUBLICATION_IDS)
        if unknown:
            raise ValueError(f"record_publication: unknown fields {sorted(unknown)}")
        columns = ", ".join(f"{k} = ?" for k in ids)
        self._execute(
            f"""update publications set state = 'published', {columns}, updated_at = now()
                where brief = ? and variant_id = ? and channel = ?""",
            [*ids.values(), brief, variant_id, channel],
        )

    def set_status(
        self, brief: str, variant_id: str, channel: str, status: str, daily_budget_cents: int | None = None
    ) -> None:
        self._execute(
            """update publications set status = ?, daily_budget_cents = coalesce(?, daily_budget_cents),
               updated_at = now() where brief = ? and variant_id = ? and channel = ?""",
            [status, daily_budget_cents, brief, variant_id, channel],
        )

    def publications(self, brief: str, channel: str) -> pd.DataFrame:
        return self._query(
            "select * from publications where brief = ? and channel = ? and state = 'published' order by variant_id",
            [brief, channel],
        )

    @contextmanager
    def lease(
        self, brief: str, variant_id: str, channel: str, owner: str, ttl_s: float = 600.0, wait_s: float = 600.0
    ) -> Iterator[None]:
        """Hold the right to create a variant's objects on a channel: one holder at a time, across processes
        (concurrent publishes of one variant create one of each object). A holder that died frees it after
        ``ttl_s``; a waiter gives up after ``wait_s`` with LeaseBusy."""
        deadline = time.monotonic() + wait_s
        while not self._claim(brief, variant_id, channel, owner, ttl_s):
            if time.monotonic() > deadline:
                raise LeaseBusy(f"{brief}/{variant_id} on {channel} is being published by another process")
            time.sleep(0.1)
        try:
            yield
        finally:
            self._execute(
                "delete from leases where brief = ? and variant_id = ? and channel = ? and owner = ?",
                [brief, variant_id, channel, owner],
            )

    def _claim(self, brief: str, variant_id: str, channel: str, owner: str, ttl_s: float) -> bool:
        key = [brief, variant_id, channel]
        try:
            with self.store.connect() as con:
                con.execute("begin")
                con.execute(
                    f"""delete from leases where brief = ? and variant_id = ? and channel = ?
                        and taken_at < now() - interval '{float(ttl_s)} seconds'""",
                    key,
                )
                con.execute("insert into leases (brief, variant_id, channel, owner) values (?, ?, ?, ?) "
                            "on conflict do nothing", [*key, owner])  # fmt: skip
                holder = con.execute(
                    "select owner from leases where brief = ? and variant_id = ? and channel = ?", key
                ).fetchone()
                con.execute("commit")
        except duckdb.TransactionException:  # another thread of this process claimed at the same moment
            return False
        return holder is not None and holder[0] == owner

    # controls ---------------------------------------------------------------------------------------
    def set_paused(self, brief: str, paused: bool, actor: str, reason: str = "") -> None:
        """Pause or resume a brief (``ALL_BRIEFS`` for the switch over every brief); recorded in the audit log."""
        with self.store.connect() as con:
            con.execute("begin")
            con.execute(
                """insert into controls (brief, paused, actor, reason) values (?, ?, ?, ?)
                   on conflict (brief) do update set paused = excluded.paused, actor = excluded.actor,
                   reason = excluded.reason, changed_at = now()""",
                [brief, paused, actor, reason],
            )
            self._log_action(con, Action(brief, "pause" if paused else "resume", actor, reason))
            con.execute("commit")

    def is_paused(self, brief: str) -> bool:
        """A brief is paused when it is, or when the switch over every brief is."""
        with self.store.connect() as con:
            rows = con.execute(
                "select bool_or(paused) from controls where brief in (?, ?)", [brief, ALL_BRIEFS]
            ).fetchone()
        return bool(rows[0])

    # audit ------------------------------------------------------------------------------------------
    def log_action(self, action: Action) -> None:
        with self.store.connect() as con:
            self._log_action(con, action)

    @staticmethod
    def _log_action(con, action: Action) -> None:
        con.execute(
            "insert into actions (brief, action, actor, reason, details) values (?, ?, ?, ?, ?)",
            [action.brief, action.action, action.actor, action.reason, json.dumps(action.details or {}, default=str)],
        )

    def actions(self, brief: str | None = None) -> pd.DataFrame:
        if brief is None:
            return self._query('select * from actions order by "at"')
        return self._query('select * from actions where brief in (?, ?) order by "at"', [brief, ALL_BRIEFS])

    # decisions --------------------------------------------------------------------------------------
    def log_decisions(self, brief: str, generation: int, decisions: list[Decision]) -> None:
        with self.store.connect() as con:
            self._log_decisions(con, brief, generation, decisions)

    @staticmethod
    def _log_decisions(con, brief: str, generation: int, decisions: list[Decision]) -> None:
        for d in decisions:
            con.execute(
                """insert into decisions (brief, generation, kind, variant_id, factors, propensity,
                           policy_version) values (?, ?, ?, ?, ?, ?, ?)""",
                [
                    brief,
                    generation,
                    d.kind,
                    d.variant_id,
                    json.dumps(d.logged_details(), default=str),
                    float(d.propensity),
                    d.policy_version,
                ],
            )

    def decisions(self, brief: str) -> pd.DataFrame:
        return self._query("select * from decisions where brief = ? order by made_at", [brief])
