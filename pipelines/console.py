"""The web console for growth marketers: sign in, see each brief's leaderboard, spend against the cap and
what wins by factor, and pause or resume, on the same ASGI stack (starlette on uvicorn) as the ingest endpoint.

Server-rendered pages, no JavaScript. Every page needs a session; a marketer reaches only her brands' briefs
(any other brief answers 404, the same as one that does not exist). Every POST carries the session's CSRF
token (sign-in: a double-submit cookie); sessions live in HttpOnly, SameSite=Strict cookies.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from connectors.artifacts import ArtifactStoreError
from connectors.event_store import EventStore
from connectors.ingest_server import Refused, bounded_stream, read_body
from connectors.ledger import ALL_BRIEFS, Action, Ledger
from connectors.meta import MetaError
from connectors.users import Session, User, UserError, UserStore
from creative.brief import Brief, BriefError, load_brief, read_brief_data, save_brief, validate_brief
from experiments import reporting
from experiments.catalog import BRIEF_FILE
from experiments.planning import waiting_colours, waiting_templates
from pipelines import stages
from pipelines.brief_form import (
    CHANNEL_FIELDS,
    apply_form,
    apply_new_form,
    decide_approval,
    form_view,
    new_brief_data,
    picker_value,
)
from pipelines.channels import NoChannel
from pipelines.settings import Settings
from pipelines.status import brief_status, pause_brief

HERE = Path(__file__).parent / "console_files"
log = logging.getLogger("autoplay.console")
SESSION_COOKIE = "autoplay_session"
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 400
SIGNIN_COOKIE = "autoplay_signin_csrf"
MAX_MODEL_BYTES = 100 * 1024 * 1024
#: A new brief's model comes as one file: a .gltf's buffers would need more, and a .blend may carry scripts.
MODEL_SUFFIXES = (".glb", ".obj")
#: Where a new brief's upload waits until the brief validates; one level below the catalog's */brief.yaml.
STAGING = ".staging"
STAGING_KEEP_S = 24 * 3600
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
_pages.globals["picker_value"] = picker_value


@dataclass
class Console:
    """What the pages read and change: the deployment's ledger, event store and users."""

    settings: Settings

    def __post_init__(self) -> None:
        self.store = EventStore(self.settings.event_store_path)
        self.ledger = Ledger(self.store)
        self.users = UserStore(self.store)
        self.artifacts = self.settings.artifact_store()

    def visible_briefs(self, user: User) -> pd.DataFrame:
        briefs = self.ledger.briefs()
        return briefs[briefs["brand"].map(user.may_see).astype(bool)]  # (an empty mask on no rows too)

    def brief_file(self, user: User, name: str) -> Path:
        """The brief's YAML file (the format; the form reads and writes it), if this user may see the brief."""
        self.brief_for(user, name)
        briefs = self.ledger.briefs().set_index("brief")
        path = Path(briefs.loc[name, "path"])
        if not path.is_file():
            raise HTTPException(404, f"brief {name!r} has no file at {path} any more")
        return path

    def file_version(self, name: str, path: Path) -> None:
        """A hand edit of the file shows up: a text the ledger has not seen becomes a version by "file"."""
        self.ledger.record_brief_version(name, path.read_text(), "file")

    def brand_brief_data(self, brand: str) -> dict | None:
        """The YAML of the brand's most recently seen brief (where a new brief's channel settings come from)."""
        briefs = self.ledger.briefs()
        briefs = briefs[briefs["brand"] == brand].sort_values("seen_at")
        for path in reversed(list(briefs["path"])):
            try:
                return read_brief_data(path)
            except BriefError:
                continue
        return None

    def staging(self, token: str) -> Path:
        """A new brief's folder while it is not valid yet: its upload is kept between tries of the form."""
        return self.settings.briefs_dir / STAGING / token

    def sweep_staging(self) -> None:
        """Forget uploads of briefs that were never finished."""
        for folder in (self.settings.briefs_dir / STAGING).glob("*"):
            if time.time() - folder.stat().st_mtime > STAGING_KEEP_S:
                shutil.rmtree(folder, ignore_errors=True)

    def brief_for(self, user: User, name: str) -> Brief:
        """The brief, if this user may see it; 404 otherwise (whether or not it exists)."""
        spec = self.ledger.brief_spec(name)
        if spec is None or not user.may_see(spec.get("brand")):
            raise HTTPException(404, f"no brief {name!r}")
        return Brief.model_validate(spec)


def create_app(settings: Settings) -> Starlette:
    console = Console(settings)

    def page(request: Request, template: str, session: Session | None, code: int = 200, **context) -> Response:
        body = _pages.get_template(template).render(
            request=request, session=session, user=session.user if session else None, **context
        )
        return HTMLResponse(body, status_code=code, headers=HEADERS)

    def signed_in(request: Request) -> Session:
        session = console.users.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise HTTPException(303, headers={"Location": f"/signin?next={request.url.path}"})
        return session

    async def checked_fields(request: Request, session: Session) -> dict[str, list[str]]:
        """The post's fields, once its CSRF token is the session's (403 otherwise)."""
        return csrf_checked(await form_fields(request), session)

    async def checked_form(request: Request, session: Session) -> dict[str, str]:
        return {k: v[-1] for k, v in (await checked_fields(request, session)).items()}

    async def signin(request: Request) -> Response:
        if request.method == "GET":
            token = secrets.token_urlsafe(32)
            response = page(request, "signin.html", None, csrf=token, next=_safe_next(request.query_params.get("next")))
            response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", secure=_https(request))
            return response
        form = {k: v[-1] for k, v in (await form_fields(request)).items()}
        cookie = request.cookies.get(SIGNIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(str(form.get("csrf", "")), cookie):
            raise HTTPException(403, "missing or wrong CSRF token: reload the sign-in page")
        try:
            session = console.users.sign_in(str(form.get("email", "")), str(form.get("password", "")))
        except UserError as exc:
            return page(request, "signin.html", None, 401, csrf=cookie, error=str(exc), email=form.get("email", ""))
        response = RedirectResponse(_safe_next(str(form.get("next", ""))), status_code=303, headers=HEADERS)
        response.set_cookie(
            SESSION_COOKIE, session.token, httponly=True, samesite="strict", secure=_https(request), max_age=43200
        )
        response.delete_cookie(SIGNIN_COOKIE)
        return response

    async def signout(request: Request) -> Response:
        session = signed_in(request)
        await checked_form(request, session)
        console.users.sign_out(session.token)
        response = RedirectResponse("/signin", status_code=303, headers=HEADERS)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def home(request: Request) -> Response:
        with console.store.held():  # one connection for the page's reads (its session's too), not one per query
            session = signed_in(request)
            rows = []
            for name in console.visible_briefs(session.user)["brief"]:
                brief = console.brief_for(session.user, name)
                status = brief_status(console.ledger, name)
                board, _ = stages.current_leaderboard(brief, console.ledger, console.store)
                leader = board.iloc[0]["variant_id"] if len(board) else None
                daily = stages.brief_daily(console.ledger, console.store, brief)
                today = pd.Timestamp(status["day"]) if status["day"] else None
                spent = reporting.spend_between(daily, today, today) if today is not None else 0.0
                rows.append({"brief": brief, "status": status, "leader": leader, "spent_today": spent,
                             "state": _brief_state(console, status)})  # fmt: skip
            all_paused = console.ledger.is_paused(ALL_BRIEFS)
        return page(request, "home.html", session, rows=rows, all_paused=all_paused)

    async def brief_page(request: Request) -> Response:
        with console.store.held():  # one connection for the page's reads (its session's too), not one per query
            session = signed_in(request)
            brief = console.brief_for(session.user, request.path_params["name"])
            try:
                waiting = _waiting(load_brief(console.brief_file(session.user, brief.name)))
            except (BriefError, HTTPException):
                waiting = []  # a file being edited by hand that does not validate: the form shows why
            view = brief_view(console, brief)
        return page(request, "brief.html", session, waiting=waiting, **view)

    async def thumbnail(request: Request) -> Response:
        session = signed_in(request)
        brief = console.brief_for(session.user, request.path_params["name"])
        variants = console.ledger.variants(brief.name).set_index("variant_id")
        vid = request.path_params["variant_id"]
        if vid not in variants.index or not isinstance(variants.loc[vid, "render_dir"], str):
            raise HTTPException(404, "no render")
        try:  # a remote store downloads: off the event loop, so other pages keep answering
            folder = await run_in_threadpool(console.artifacts.local, variants.loc[vid, "render_dir"])
        except ArtifactStoreError:
            raise HTTPException(404, "no render") from None
        if request.url.path.split("/")[3] == "video":  # the turntable that plays in the leaderboard
            names, media = ["turntable.mp4"], "video/mp4"
        else:
            names, media = ["still.jpg", "poster.jpg"], "image/jpeg"
        found = [folder / n for n in names if (folder / n).is_file()]
        if not found:
            raise HTTPException(404, "no render")
        return FileResponse(found[0], media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    async def edit(request: Request) -> Response:
        """The brief in a form: GET shows the file as it is now; POST validates with the brief's own model,
        writes the file, and keeps the text as a version with who saved it."""
        session = signed_in(request)
        name = request.path_params["name"]
        path = console.brief_file(session.user, name)
        console.file_version(name, path)
        data = read_brief_data(path)
        errors, saved = {}, None
        if request.method == "POST":
            data = apply_form(data, await checked_fields(request, session))
            try:
                brief, text = save_brief(path, data)
            except BriefError as exc:
                errors = exc.fields or {"brief": str(exc)}
            else:
                who = f"console:{session.user.email}"
                version = console.ledger.record_brief_version(name, text, who)
                console.ledger.record_brief(brief.name, brief.brand, str(path), brief.model_dump(mode="json"))
                console.ledger.log_action(Action(name, "edit", who, f"brief saved as version {version}", {}))
                saved = version
        versions = console.ledger.brief_versions(name).head(20).to_dict("records")
        code = 400 if errors else 200
        return page(request, "edit.html", session, code, name=name, form=form_view(data), errors=errors,
                    saved=saved, versions=versions)  # fmt: skip

    async def new_brief(request: Request) -> Response:
        """A new brief in a form, with its product model uploaded: GET shows the form (the brand's channel
        settings filled in); POST validates it with the brief's own model and moves the finished folder into
        the catalog in one rename, so autoplay sees the whole brief or nothing. A refused form keeps what was
        typed and the uploaded model."""
        session = signed_in(request)
        user = session.user
        if not console.settings.briefs_dir.is_dir():
            raise HTTPException(409, f"the catalog {console.settings.briefs_dir} is not a folder of briefs")
        brands = [] if user.role == "admin" else list(user.brands)
        if request.method == "GET":
            brand = brands[0] if brands else ""
            data = new_brief_data(console.brand_brief_data(brand) if brand else None, brand)
            return new_page(request, session, data, brands, {}, None)
        fields, upload = await upload_form(request, session)
        console.sweep_staging()
        brand = str((fields.get("brand") or [""])[-1]).strip()
        token = str((fields.get("staged") or [""])[-1])
        if not (
            len(token) >= 32 and token.replace("-", "").replace("_", "").isalnum() and console.staging(token).is_dir()
        ):
            token = secrets.token_urlsafe(32)
        folder = console.staging(token)
        folder.mkdir(parents=True, exist_ok=True)
        errors: dict[str, str] = {}
        if upload is not None and upload.filename:
            suffix = Path(upload.filename).suffix.lower()
            if suffix in MODEL_SUFFIXES:
                for old_model in folder.glob("model.*"):
                    old_model.unlink()
                with open(folder / f"model{suffix}", "wb") as out:
                    shutil.copyfileobj(upload.file, out)
            else:
                errors["product.model"] = f"{upload.filename}: the model must be a {' or '.join(MODEL_SUFFIXES)} file"
        models = sorted(folder.glob("model.*"))
        if not models and not errors:
            errors["product.model"] = "choose the product's 3D model file"
        data = apply_new_form(new_brief_data(console.brand_brief_data(brand), brand), fields,
                              models[0].name if models else "")  # fmt: skip
        if not user.may_see(brand):
            errors["brand"] = f"you create briefs for {', '.join(user.brands) or 'no brand'} only"
        name = str(data["name"])
        slug = re.fullmatch(Brief.model_fields["name"].metadata[0].pattern, name) is not None
        if slug and (console.ledger.brief_spec(name) is not None or (console.settings.briefs_dir / name).exists()):
            errors["name"] = f"a brief named {name!r} exists already"  # (no other path is ever looked at)
        if not errors:
            try:
                _, text = save_brief(folder / BRIEF_FILE, data)
            except BriefError as exc:
                errors = exc.fields or {"brief": str(exc)}
        if not errors:
            target = console.settings.briefs_dir / name
            try:
                if target.exists():
                    raise OSError(f"{target} exists")
                os.rename(folder, target)  # one step: the catalog never sees half a brief
            except OSError:
                errors["name"] = f"a brief named {name!r} exists already"
        if errors:
            return new_page(request, session, data, brands, errors, token if models else None, 400)
        brief = load_brief(target / BRIEF_FILE)
        who = f"console:{user.email}"
        console.ledger.record_brief(brief.name, brief.brand, str(target / BRIEF_FILE), brief.model_dump(mode="json"))
        version = console.ledger.record_brief_version(name, text, who)
        console.ledger.log_action(Action(name, "create", who, f"brief created as version {version}", {}))
        return RedirectResponse(f"/briefs/{name}", status_code=303, headers=HEADERS)

    def new_page(request, session, data, brands, errors, staged, code=200) -> Response:
        models = sorted(console.staging(staged).glob("model.*")) if staged else []
        staged_name = f"{models[0].name} ({models[0].stat().st_size / 1e6:.1f} MB)" if models else None
        return page(request, "new.html", session, code, data=data, form=form_view(data), brands=brands,
                    errors=errors, staged=staged if models else None, staged_name=staged_name,
                    channel_fields=CHANNEL_FIELDS, max_model_mb=MAX_MODEL_BYTES // 2**20)  # fmt: skip

    async def upload_form(request: Request, session: Session) -> tuple[dict[str, list[str]], UploadFile | None]:
        """A multipart post's fields and its one file, once its CSRF token is the session's: the body at most
        ``MAX_MODEL_BYTES`` plus the form's own limit, at most ``MAX_FORM_FIELDS`` fields."""
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "multipart/form-data":
            raise HTTPException(415, f"a new brief is posted as multipart/form-data, not {kind or 'untyped'}")
        body = bounded_stream(request, MAX_MODEL_BYTES + MAX_FORM_BYTES)
        parser = MultiPartParser(request.headers, body, max_files=1, max_fields=MAX_FORM_FIELDS,
                                 max_part_size=MAX_FORM_BYTES)  # fmt: skip
        try:
            form = await parser.parse()
        except Refused as exc:
            raise HTTPException(exc.status, exc.reason) from None
        except MultiPartException as exc:
            raise HTTPException(413 if "max" in exc.message.lower() else 400, f"the form: {exc.message}") from None
        fields: dict[str, list[str]] = {}
        upload = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                upload = value if key == "model" else upload
            else:
                fields.setdefault(key, []).append(value)
        return csrf_checked(fields, session), upload

    async def approvals(request: Request) -> Response:
        """Approve a waiting template family or new colour (it may go live) or reject it, with a note."""
        session = signed_in(request)
        name = request.path_params["name"]
        path = console.brief_file(session.user, name)
        form = await checked_form(request, session)
        kind, value, verdict = (str(form.get(k, "")) for k in ("kind", "value", "decision"))
        brief = validate_brief(path, read_brief_data(path))
        if verdict not in ("approve", "reject") or (kind, value) not in _waiting(brief):
            raise HTTPException(400, f"nothing waits for approval as {kind} {value!r} ({verdict!r})")
        console.file_version(name, path)
        try:
            brief, text = save_brief(path, decide_approval(read_brief_data(path), kind, value, verdict == "approve"))
        except BriefError as exc:
            raise HTTPException(400, f"{verdict} {kind} {value}: {exc}") from None
        who, note = f"console:{session.user.email}", str(form.get("note", ""))[:500]
        version = console.ledger.record_brief_version(name, text, who)
        console.ledger.record_brief(brief.name, brief.brand, str(path), brief.model_dump(mode="json"))
        details = {kind: value, "version": version}
        console.ledger.log_action(Action(name, verdict, who, f"{kind} {value}: {note}".rstrip(": "), details))
        return RedirectResponse(f"/briefs/{name}", status_code=303, headers=HEADERS)

    async def control(request: Request) -> Response:
        """GET: a confirmation page; POST (with the CSRF token): pause or resume, recorded as the signed-in user."""
        session = signed_in(request)
        action, name = request.path_params["action"], request.path_params.get("name")
        if action not in ("pause", "resume"):
            raise HTTPException(404, "no such control")
        if name is None and session.user.role != "admin":
            raise HTTPException(403, "only an admin pauses or resumes every brief")
        target = console.brief_for(session.user, name).name if name else ALL_BRIEFS
        if request.method == "GET":
            return page(request, "confirm.html", session, action=action, brief=name)
        form = await checked_form(request, session)
        reason = str(form.get("reason", ""))[:500]
        who = f"console:{session.user.email}"
        if action == "pause":
            try:
                note = pause_brief(console.settings, console.ledger, target, who, reason)
            except (NoChannel, MetaError) as exc:
                note = f"paused in the ledger (the loop keeps its ads PAUSED); Meta could not be reached now: {exc}"
        else:
            console.ledger.set_paused(target, False, who, reason)
            note = "resumed; the next day's run allocates again"
        back = f"/briefs/{name}" if name else "/"
        return page(request, "done.html", session, message=f"{name or 'every brief'}: {note}", back=back)

    async def not_allowed(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 303:
            return RedirectResponse(exc.headers["Location"], status_code=303, headers=HEADERS)
        session = console.users.session(request.cookies.get(SESSION_COOKIE))
        return page(request, "error.html", session, exc.status_code, message=exc.detail)

    async def broken(request: Request, exc: Exception) -> Response:
        log.exception("console: %s %s failed", request.method, request.url.path, exc_info=exc)
        return HTMLResponse("<h1>Something went wrong</h1><p>It is in the console's log.</p>", 500, headers=HEADERS)

    routes = [
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/", home),
        Route("/new-brief", new_brief, methods=["GET", "POST"]),
        Route("/briefs/{name}", brief_page),
        Route("/briefs/{name}/thumb/{variant_id}", thumbnail),
        Route("/briefs/{name}/video/{variant_id}", thumbnail),
        Route("/briefs/{name}/edit", edit, methods=["GET", "POST"]),
        Route("/briefs/{name}/approvals", approvals, methods=["POST"]),
        Route("/briefs/{name}/{action}", control, methods=["GET", "POST"]),
        Route("/all/{action}", control, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_allowed, Exception: broken})


def csrf_checked(fields: dict[str, list[str]], session: Session) -> dict[str, list[str]]:
    """The post's fields, once its CSRF token is the session's (403 otherwise)."""
    if not secrets.compare_digest((fields.get("csrf") or [""])[-1], session.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return fields


async def form_fields(request: Request) -> dict[str, list[str]]:
    """A form post's fields (each with all its values), read with the same limits as the ingest endpoint:
    at most ``MAX_FORM_BYTES`` and ``MAX_FORM_FIELDS``, URL-encoded only (the console's forms are)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    try:
        body = await read_body(request, MAX_FORM_BYTES)
        if kind != "application/x-www-form-urlencoded" and (body or kind):
            raise HTTPException(415, f"a form post is application/x-www-form-urlencoded, not {kind or 'untyped'}")
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except Refused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None
    except ValueError:
        raise HTTPException(413, f"more than {MAX_FORM_FIELDS} form fields") from None
    fields: dict[str, list[str]] = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(value)
    return fields


def brief_view(console: Console, brief: Brief) -> dict:
    """Everything the brief's page shows."""
    ledger, store = console.ledger, console.store
    board, traffic = stages.current_leaderboard(brief, ledger, store)
    daily = stages.brief_daily(ledger, store, brief)
    metrics = reporting.variant_metrics(daily)
    status = brief_status(ledger, brief.name)
    ad_status = {a["variant_id"]: a["status"] for a in status["ads"] if a["channel"] == "meta"}
    variants = ledger.variants(brief.name).set_index("variant_id")
    current = ledger.current_generation(brief.name)
    live = set(ledger.live(brief.name, current)["variant_id"]) if current is not None else set()
    rows = []
    for r in board.itertuples():
        v = variants.loc[r.variant_id]
        state = _variant_state(v, ad_status.get(r.variant_id), r.variant_id in live)
        m = metrics.loc[r.variant_id] if r.variant_id in metrics.index else None
        rows.append(
            {
                "variant_id": r.variant_id,
                "template": r.template,
                "colour": r.colour,
                "aspect": r.aspect,
                "kind": v["kind"],
                "state": state,
                "impressions": int(m["impressions"]) if m is not None else 0,
                "ctr": float(m["ctr"]) if m is not None else 0.0,
                "cvr": float(m["cvr"]) if m is not None else 0.0,
                "roas": float(m["roas"]) if m is not None else 0.0,
                "low": float(r.ci_low),
                "high": float(r.ci_high),
                "share": float(r.traffic_share),
            }
        )
    rendering = [
        {"variant_id": v.variant_id, "template": v.template, "colour": v.colour, "aspect": v.aspect, "kind": v.kind}
        for v in variants.reset_index().itertuples()
        if v.render_status == "planned" and v.variant_id in live
    ]
    today = pd.Timestamp(status["day"]) if status["day"] else None
    spend_today = reporting.spend_between(daily, today, today) if today is not None else 0.0
    spend_week = reporting.spend_between(daily, today - pd.Timedelta(days=6), today) if today is not None else 0.0
    effects = reporting.factor_effects(brief, variants.reset_index(), daily)
    curve = reporting.learning_curve(brief, traffic, daily, ledger.generations(brief.name))
    actions = ledger.actions(brief.name).tail(50).iloc[::-1]
    catalog = pd.concat(
        [stages.variant_evidence(Brief.model_validate(json.loads(r.spec)), ledger, store, brief.goal)
         for r in ledger.briefs().itertuples()],
        ignore_index=True,
    )  # fmt: skip
    lifts = reporting.pooled_lifts(catalog, [(brief.brand, brief.brand, None), ("all brands", None, None)])
    return {
        "brief": brief,
        "status": status,
        "state": _brief_state(console, status),
        "rows": rows,
        "rendering": rendering,
        "spend_today": spend_today,
        "spend_week": spend_week,
        "charts": [  # a factor the brief never varied (stills only, one placement) has nothing to compare
            (f.replace("_", " "), bar_chart_svg(effects[effects["factor"] == f], brief.goal))
            for f in reporting.REPORT_FACTORS
            if effects.empty or (effects["factor"] == f).sum() > 1
        ],
        "curve": line_chart_svg(curve, brief.goal),
        "actions": actions.to_dict("records"),
        "lifts": [reporting.lift_sentence(r) for r in lifts.to_dict("records") if r["level"] != r["reference"]],
    }


def _brief_state(console: Console, status: dict) -> str:
    """A few words for a brief: paused, new (not planned yet), rendering, ready to publish, in review, not
    delivering (every ad of it paused, as after its last generation) or live."""
    if status["paused"]:
        return "paused"
    if status["generation"] is None:
        return "new"
    live = console.ledger.live(status["name"], status["generation"])
    if (live["render_status"] == "planned").any():
        return "rendering"
    if not status["ads"]:
        return "ready to publish"
    meta = [a["status"] for a in status["ads"] if a["channel"] == "meta"]
    if "PENDING_REVIEW" in meta:
        return "in review"
    if meta and "ACTIVE" not in meta:
        return "not delivering"
    return "live"


def _waiting(brief: Brief) -> list[tuple[str, str]]:
    """What waits for approval, as (kind, value): template families, then new colours."""
    return [("template", t) for t in waiting_templates(brief)] + [("colour", c) for c in waiting_colours(brief)]


def _variant_state(variant: pd.Series, ad_status: str | None, live: bool) -> str:
    if variant["render_status"] in ("planned", None):
        return "rendering"
    if variant["render_status"] in ("failed", "qa_failed"):
        return variant["render_status"].replace("_", " ")
    if isinstance(variant.get("retired_reason"), str):
        return "disapproved: " + variant["retired_reason"] if "disapprov" in variant["retired_reason"] else "retired"
    if ad_status == "PENDING_REVIEW":
        return "in review"
    if ad_status == "ACTIVE" and live:
        return "live"
    if ad_status == "PAUSED":
        return "paused"
    return "retired" if not live else (ad_status.lower() if ad_status else "ready to publish")


def bar_chart_svg(rows: pd.DataFrame, goal: str, width: int = 360) -> str:
    """Horizontal bars of each level's rate with its interval as a whisker; a level's colour is its own hex
    when the level is a colour."""
    if rows.empty:
        return ""
    top = max(float(rows["high"].max()), 1e-6)
    bar_h, pad, label_w = 22, 6, 120
    height = len(rows) * (bar_h + pad) + pad
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{goal} by level with 95% intervals">']  # fmt: skip
    scale = (width - label_w - 60) / top
    for i, r in enumerate(rows.sort_values("rate", ascending=False).itertuples()):
        y = pad + i * (bar_h + pad)
        fill = reporting.level_colour(r.level)
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(r.level)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{r.rate * scale:.1f}" height="{bar_h}" fill="{fill}" '
                     f'stroke="#333" stroke-width="0.5"/>')  # fmt: skip
        x0, x1 = label_w + r.low * scale, label_w + r.high * scale
        mid = y + bar_h / 2
        parts.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{mid}" y2="{mid}" stroke="#111" stroke-width="1.5"/>')
        parts.append(f'<text x="{x1 + 4:.1f}" y="{y + 15}" font-size="11">{r.rate:.2%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart_svg(curve: pd.DataFrame, goal: str, width: int = 360, height: int = 160) -> str:
    """The goal rate by generation, with its interval as a band."""
    if curve.empty:
        return ""
    top = max(float(curve["high"].max()), 1e-6)
    n = max(len(curve) - 1, 1)
    xs = [30 + (width - 60) * i / n for i in range(len(curve))]

    def y(v: float) -> float:
        return height - 20 - (height - 40) * v / top

    band = " ".join(f"{x:.1f},{y(h):.1f}" for x, h in zip(xs, curve["high"]))
    band += " " + " ".join(f"{x:.1f},{y(lo):.1f}" for x, lo in zip(reversed(xs), reversed(curve["low"].tolist())))
    line = " ".join(f"{x:.1f},{y(r):.1f}" for x, r in zip(xs, curve["rate"]))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{goal} by generation with 95% intervals">',
             f'<polygon points="{band}" fill="#c5d0fa"/>',
             f'<polyline points="{line}" fill="none" stroke="#364fc7" stroke-width="2"/>']  # fmt: skip
    for x, g, r in zip(xs, curve["generation"], curve["rate"]):
        parts.append(f'<circle cx="{x:.1f}" cy="{y(r):.1f}" r="3" fill="#364fc7"/>')
        parts.append(f'<text x="{x - 8:.1f}" y="{height - 4}" font-size="11">g{int(g)}</text>')
        parts.append(f'<text x="{x - 12:.1f}" y="{y(r) - 8:.1f}" font-size="10">{r:.2%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never ``//evil.example`` or a full URL (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):  # a header split (CR LF) or other control bytes
        return "/"
    return target


def _https(request: Request) -> bool:
    return request.url.scheme == "https"
