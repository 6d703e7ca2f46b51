"""The loop's ledger, in the same DuckDB file as the events: variants, generations, what was published,
and the decision log (every plan and allocation choice with its propensity)."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

from connectors.event_store import EventStore

SCHEMA = """
create table if not exists variants (
    variant_id varchar primary key, brief varchar not null, template varchar not null, colour varchar not null,
    aspect varchar not null, profile varchar not null, born_generation integer not null,
    render_dir varchar, render_status varchar default 'planned', render_error varchar
);
create table if not exists generations (
    brief varchar not null, generation integer not null, since date, until date, policy_run_id varchar,
    primary key (brief, generation)
);
create table if not exists live_variants (
    brief varchar not null, generation integer not null, variant_id varchar not null,
    primary key (brief, generation, variant_id)
);
create table if not exists publications (
    variant_id varchar not null, channel varchar not null, state varchar not null, ad_id varchar,
    adset_id varchar, creative_id varchar, image_hash varchar, status varchar, updated_at timestamptz default now(),
    primary key (variant_id, channel)
);
alter table variants add column if not exists retired_reason varchar;
alter table publications add column if not exists video_id varchar;
alter table publications add column if not exists media_id varchar;
alter table publications add column if not exists product_id varchar;
create table if not exists decisions (
    brief varchar not null, generation integer not null, kind varchar not null, variant_id varchar,
    factors json, propensity double not null, policy_version varchar, made_at timestamptz default now()
);
"""


class Ledger:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        with store.connect() as con:
            con.execute(SCHEMA)

    def _query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.store.connect() as con:
            return con.execute(sql, params or []).df()

    def _execute(self, sql: str, params: list | None = None) -> None:
        with self.store.connect() as con:
            con.execute(sql, params or [])

    # generations ----------------------------------------------------------------------------------
    def current_generation(self, brief: str) -> int | None:
        with self.store.connect() as con:
            return con.execute("select max(generation) from generations where brief = ?", [brief]).fetchone()[0]

    def start_generation(self, brief: str, generation: int, variants: pd.DataFrame, decisions: list[dict]) -> None:
        """Record a new generation's live variants (rendering to do) and the decisions that chose them."""
        with self.store.connect() as con:
            con.execute("begin")
            con.execute("insert into generations (brief, generation) values (?, ?)", [brief, generation])
            for v in variants.itertuples():
                con.execute(
                    """insert into variants (variant_id, brief, template, colour, aspect, profile,
                               born_generation) values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing""",
                    [v.variant_id, brief, v.template, v.colour, v.aspect, v.profile, generation],
                )
                con.execute("insert into live_variants values (?, ?, ?)", [brief, generation, v.variant_id])
            self._log_decisions(con, brief, generation, decisions)
            con.execute("commit")

    def extend_window(self, brief: str, generation: int, day: date) -> None:
        """Mark ``day`` as served by this generation (its window runs from its first to its last day)."""
        self._execute(
            """update generations set since = coalesce(since, ?), until = ?
                         where brief = ? and generation = ?""",
            [day, day, brief, generation],
        )

    def set_policy_run(self, brief: str, generation: int, run_id: str) -> None:
        self._execute(
            "update generations set policy_run_id = ? where brief = ? and generation = ?", [run_id, brief, generation]
        )

    def generations(self, brief: str) -> pd.DataFrame:
        return self._query("select * from generations where brief = ? order by generation", [brief])

    # variants ---------------------------------------------------------------------------------------
    def variant(self, variant_id: str) -> dict:
        df = self._query("select * from variants where variant_id = ?", [variant_id])
        if df.empty:
            raise KeyError(f"unknown variant {variant_id}")
        return df.iloc[0].to_dict()

    def variants(self, brief: str) -> pd.DataFrame:
        return self._query("select * from variants where brief = ? order by born_generation, variant_id", [brief])

    def retire(self, variant_id: str, reason: str) -> None:
        """Take a variant out of the loop for good (a platform refused it); the reason is kept."""
        self._execute("update variants set retired_reason = ? where variant_id = ?", [reason, variant_id])

    def live(self, brief: str, generation: int) -> pd.DataFrame:
        return self._query(
            """select v.* from live_variants l join variants v using (variant_id)
                              where l.brief = ? and l.generation = ? order by v.variant_id""",
            [brief, generation],
        )

    def live_history(self, brief: str) -> pd.DataFrame:
        return self._query("select generation, variant_id from live_variants where brief = ?", [brief])

    def set_render(self, variant_id: str, status: str, render_dir: str | None, error: str | None = None) -> None:
        self._execute(
            "update variants set render_status = ?, render_dir = ?, render_error = ? where variant_id = ?",
            [status, render_dir, error, variant_id],
        )

    # publications -----------------------------------------------------------------------------------
    def record_intent(self, variant_id: str, channel: str) -> None:
        """Written before any create call, so a crash mid-publish is visible and the retry looks up first."""
        self._execute(
            """insert into publications (variant_id, channel, state) values (?, ?, 'intent')
                         on conflict do nothing""",
            [variant_id, channel],
        )

    PUBLICATION_IDS = ("ad_id", "adset_id", "creative_id", "image_hash", "video_id", "media_id", "product_id", "status")

    def record_publication(self, variant_id: str, channel: str, **ids: str | None) -> None:
        """What a channel made for a variant: Meta's ad, ad set, creative, image and video; Shopify's media."""
        unknown = set(ids) - set(self.PUBLICATION_IDS)
        if unknown:
            raise ValueError(f"record_publication: unknown fields {sorted(unknown)}")
        columns = ", ".join(f"{k} = ?" for k in ids)
        self._execute(
            f"""update publications set state = 'published', {columns}, updated_at = now()
                where variant_id = ? and channel = ?""",
            [*ids.values(), variant_id, channel],
        )

    def set_status(self, variant_id: str, channel: str, status: str) -> None:
        self._execute(
            "update publications set status = ?, updated_at = now() where variant_id = ? and channel = ?",
            [status, variant_id, channel],
        )

    def publications(self, channel: str) -> pd.DataFrame:
        return self._query("select * from publications where channel = ? and state = 'published'", [channel])

    # decisions --------------------------------------------------------------------------------------
    def log_decisions(self, brief: str, generation: int, decisions: list[dict]) -> None:
        with self.store.connect() as con:
            self._log_decisions(con, brief, generation, decisions)

    @staticmethod
    def _log_decisions(con, brief: str, generation: int, decisions: list[dict]) -> None:
        for d in decisions:
            con.execute(
                """insert into decisions (brief, generation, kind, variant_id, factors, propensity,
                           policy_version) values (?, ?, ?, ?, ?, ?, ?)""",
                [
                    brief,
                    generation,
                    d["kind"],
                    d.get("variant_id"),
                    json.dumps(d.get("factors") or {}),
                    float(d["propensity"]),
                    d.get("policy_version"),
                ],
            )

    def decisions(self, brief: str) -> pd.DataFrame:
        return self._query("select * from decisions where brief = ? order by made_at", [brief])
