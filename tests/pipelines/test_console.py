"""The console over real HTTP (uvicorn on a port): sign-in, brand isolation, CSRF, lockout, controls."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml
from typer.testing import CliRunner

from connectors.asgi_server import BackgroundServer
from connectors.event_store import EventStore, session
from connectors.ledger import ALL_BRIEFS, Ledger
from connectors.users import MAX_FAILED, UserStore
from creative.brief import load_brief
from pipelines.cli import app
from pipelines.console import create_app
from pipelines.settings import load_settings
from tests.conftest import EXAMPLE_BRIEF, WATERBOTTLE, rendered_folder

PASSWORD = "correct horse battery"


@pytest.fixture
def deployment_home(tmp_path):
    """A home whose ledger holds two briefs of two brands, each with a rendered, published variant."""
    settings = load_settings({"AUTOPLAY_HOME": str(tmp_path / "home"), "AUTOPLAY_BRIEFS": str(tmp_path / "briefs")})
    settings.home.mkdir(parents=True)
    with session(settings.event_store_path):  # one open of the file for the whole setup
        ledger = Ledger(EventStore(settings.event_store_path))
        for name, brand, colour in (("aqua-launch", "Aqua Co", "#1F6FEB"), ("other-launch", "Other Co", "#E8D5C4")):
            data = yaml.safe_load(EXAMPLE_BRIEF.read_text()) | {"name": name, "brand": brand}
            data["product"]["model"] = str(WATERBOTTLE)
            path = tmp_path / "briefs" / name / "brief.yaml"
            path.parent.mkdir(parents=True)
            path.write_text(yaml.safe_dump(data))
            brief = load_brief(path)
            ledger.record_brief(name, brand, str(path), brief.model_dump(mode="json"))
            vid = f"v{name[:5]}"
            row = {"variant_id": vid, "template": "studio", "colour": colour, "aspect": "1:1", "profile": "thumbnail"}
            ledger.start_generation(name, 0, pd.DataFrame([row]), [])
            ledger.set_render(vid, "rendered", str(rendered_folder(tmp_path / "renders" / vid, colour)))
            ledger.record_publication(name, vid, "meta", ad_id=f"ad-{name}", adset_id=f"as-{name}", status="ACTIVE")
        users = UserStore(EventStore(settings.event_store_path))
        users.add("mia@aqua.example", "marketer", ["Aqua Co"], PASSWORD)
        users.add("root@autoplay.example", "admin", [], PASSWORD)
    return settings, ledger


@pytest.fixture
def console(deployment_home):
    settings, ledger = deployment_home
    with BackgroundServer(create_app(settings), name="console") as server:
        yield server.url, ledger


def sign_in(url: str, email: str, password: str = PASSWORD) -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    form = browser.get(f"{url}/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = browser.post(f"{url}/signin", data={"csrf": csrf, "email": email, "password": password, "next": "/"})
    return browser, answer


def csrf_of(page: requests.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_every_page_redirects_to_sign_in_without_a_session(console):
    url, _ = console
    for path in ("/", "/briefs/aqua-launch", "/briefs/aqua-launch/thumb/vaqua-", "/briefs/aqua-launch/pause"):
        answer = requests.get(url + path, allow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin"), path
    answer = requests.post(f"{url}/briefs/aqua-launch/pause", allow_redirects=False)
    assert answer.status_code == 303


def test_a_marketer_sees_only_her_brands_briefs_and_cannot_touch_another(console):
    url, ledger = console
    browser, answer = sign_in(url, "mia@aqua.example")
    assert answer.status_code == 200 and "aqua-launch" in answer.text and "other-launch" not in answer.text
    cookie = answer.history[0].headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert browser.get(f"{url}/briefs/aqua-launch/thumb/vaqua-").headers["content-type"] == "image/jpeg"
    page = browser.get(f"{url}/briefs/aqua-launch")
    assert page.status_code == 200 and "vaqua-" in page.text
    for path in ("/briefs/other-launch", "/briefs/other-launch/thumb/vother", "/briefs/nope"):
        assert browser.get(url + path).status_code == 404, path
    token = csrf_of(page)
    assert browser.post(f"{url}/briefs/other-launch/pause", data={"csrf": token}).status_code == 404
    assert browser.post(f"{url}/all/pause", data={"csrf": token}).status_code == 403
    assert not ledger.is_paused("other-launch") and not ledger.is_paused(ALL_BRIEFS)


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(console):
    url, ledger = console
    browser, _ = sign_in(url, "mia@aqua.example")
    assert browser.post(f"{url}/briefs/aqua-launch/pause", data={}).status_code == 403
    assert browser.post(f"{url}/briefs/aqua-launch/pause", data={"csrf": "forged"}).status_code == 403
    assert not ledger.is_paused("aqua-launch")
    confirm = browser.get(f"{url}/briefs/aqua-launch/pause")
    done = browser.post(f"{url}/briefs/aqua-launch/pause", data={"csrf": csrf_of(confirm), "reason": "stock out"})
    assert done.status_code == 200 and "paused" in done.text
    assert ledger.is_paused("aqua-launch")
    last = ledger.actions("aqua-launch").iloc[-1]
    assert (last["action"], last["actor"], last["reason"]) == ("pause", "console:mia@aqua.example", "stock out")
    # sign-in itself needs the token of its own form
    assert requests.post(f"{url}/signin", data={"email": "mia@aqua.example", "password": PASSWORD}).status_code == 403


def test_repeated_failures_lock_the_account_and_sign_out_ends_the_session(console):
    url, _ = console
    for _ in range(MAX_FAILED):
        _, answer = sign_in(url, "mia@aqua.example", "wrong password!")
        assert answer.status_code == 401
    _, answer = sign_in(url, "mia@aqua.example")  # the right password, but locked now
    assert answer.status_code == 401 and "locked" in answer.text
    browser, answer = sign_in(url, "root@autoplay.example")
    assert "aqua-launch" in answer.text and "other-launch" in answer.text  # an admin sees every brand
    token = browser.cookies.get("autoplay_session")
    browser.post(f"{url}/signout", data={"csrf": csrf_of(answer)})
    stale = requests.get(f"{url}/", cookies={"autoplay_session": token}, allow_redirects=False)
    assert stale.status_code == 303


def test_sign_in_never_redirects_off_site(console):
    url, _ = console
    browser = requests.Session()
    form = browser.get(f"{url}/signin?next=//evil.example/x")
    assert "//evil.example" not in form.text
    answer = browser.post(
        f"{url}/signin",
        data={"csrf": csrf_of(form), "email": "mia@aqua.example", "password": PASSWORD, "next": "https://evil.example"},
        allow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    form = browser.get(f"{url}/signin")
    split = "/x\r\nSet-Cookie: autoplay_session=forged"  # a header split in the redirect target
    answer = browser.post(
        f"{url}/signin",
        data={"csrf": csrf_of(form), "email": "mia@aqua.example", "password": PASSWORD, "next": split},
        allow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert "forged" not in answer.headers.get("set-cookie", "")


def test_users_are_added_listed_and_removed_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPLAY_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    added = runner.invoke(
        app, ["users", "add", "zoe@aqua.example", "--role", "marketer", "--brand", "Aqua Co", "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "zoe@aqua.example  marketer  Aqua Co" in runner.invoke(app, ["users", "list"]).output
    short = runner.invoke(app, ["users", "add", "x@aqua.example", "--role", "admin", "--password-stdin"], input="abc\n")
    assert short.exit_code == 2 and "password" in short.output
    bad_role = runner.invoke(
        app, ["users", "add", "x@a.example", "--role", "owner", "--password-stdin"], input=PASSWORD
    )
    assert bad_role.exit_code == 2 and "role 'owner'" in bad_role.output
    assert runner.invoke(app, ["users", "remove", "zoe@aqua.example"]).exit_code == 0
    assert runner.invoke(app, ["users", "remove", "zoe@aqua.example"]).exit_code == 2


def form_fields(page: requests.Response) -> list[tuple[str, str]]:
    """The fields a browser would submit from the edit form as it is shown (ticked boxes only)."""
    fields = []
    for tag in re.findall(r"<input[^>]*>", page.text):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name or ('type="checkbox"' in tag and "checked" not in tag):
            continue
        fields.append((name.group(1), value.group(1) if value else ""))
    selected = re.search(r'<option value="([^"]+)" selected>', page.text)
    fields.append(("goal", selected.group(1)))
    return fields


def test_editing_a_brief_validates_beside_the_field_writes_the_yaml_and_keeps_versions(console, deployment_home):
    url, ledger = console
    path = ledger.briefs().set_index("brief").loc["aqua-launch", "path"]
    browser, _ = sign_in(url, "mia@aqua.example")
    page = browser.get(f"{url}/briefs/aqua-launch/edit")
    assert page.status_code == 200 and 'name="palette_hex_0"' in page.text
    fields = [(k, "lots" if k == "daily_budget" else v) for k, v in form_fields(page)]
    bad = browser.post(f"{url}/briefs/aqua-launch/edit", data=fields)
    assert bad.status_code == 400 and 'id="err-daily_budget"' in bad.text
    assert yaml.safe_load(open(path))["daily_budget"] != "lots"  # nothing written
    fields = [(k, "450" if k == "daily_budget" else v) for k, v in form_fields(page)]
    fields = [(k, "#2e5e4e" if k == "palette_hex_0" else v) for k, v in fields]
    saved = browser.post(f"{url}/briefs/aqua-launch/edit", data=fields)
    assert saved.status_code == 200 and "Saved as version 2" in saved.text
    on_disk = yaml.safe_load(open(path))
    assert on_disk["daily_budget"] == 450.0 and on_disk["palette"][0] == "#2e5e4e"
    assert on_disk["meta"]["account_id"]  # fields the form does not edit are kept
    versions = ledger.brief_versions("aqua-launch")
    assert list(versions["actor"]) == ["console:mia@aqua.example", "file"]
    with open(path, "a") as f:  # a hand edit shows up as a version of its own
        f.write("# edited by hand\n")
    assert "edited by hand" not in browser.get(f"{url}/briefs/aqua-launch/edit").text
    assert ledger.brief_versions("aqua-launch").iloc[0]["actor"] == "file"
    assert browser.post(f"{url}/briefs/other-launch/edit", data=fields).status_code == 404


def test_a_new_template_family_waits_for_approval_and_is_approved_or_rejected_with_a_note(console):
    url, ledger = console
    path = ledger.briefs().set_index("brief").loc["aqua-launch", "path"]
    data = yaml.safe_load(open(path))
    data["templates"] = [*data["templates"], "spotlight", "minimal"]
    data["autoplay"]["approved_templates"] = [t for t in data["templates"] if t not in ("spotlight", "minimal")]
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    browser, _ = sign_in(url, "mia@aqua.example")
    page = browser.get(f"{url}/briefs/aqua-launch")
    assert "Waiting for approval" in page.text and "Approve spotlight" in page.text
    token = csrf_of(page)
    approvals = f"{url}/briefs/aqua-launch/approvals"
    assert (
        browser.post(approvals, data={"kind": "template", "value": "spotlight", "decision": "approve"}).status_code
        == 403
    )
    answer = browser.post(approvals, data={"csrf": token, "kind": "template", "value": "spotlight",
                                           "decision": "approve", "note": "fits the winter look"})  # fmt: skip
    assert answer.status_code == 200 and "Approve spotlight" not in answer.text
    browser.post(
        approvals,
        data={"csrf": token, "kind": "template", "value": "minimal", "decision": "reject", "note": "off brand"},
    )
    on_disk = yaml.safe_load(open(path))
    assert "spotlight" in on_disk["autoplay"]["approved_templates"] and "minimal" not in on_disk["templates"]
    assert (
        browser.post(
            approvals, data={"csrf": token, "kind": "template", "value": "hero", "decision": "approve"}
        ).status_code
        == 400
    )
    actions = ledger.actions("aqua-launch")
    assert list(actions["action"].tail(2)) == ["approve", "reject"]
    assert list(actions["reason"].tail(2)) == [
        "template spotlight: fits the winter look",
        "template minimal: off brand",
    ]


def test_new_colours_near_the_palette_wait_for_approval_and_a_rejected_one_is_not_offered_again(console):
    url, ledger = console
    path = ledger.briefs().set_index("brief").loc["aqua-launch", "path"]
    data = yaml.safe_load(open(path))
    data["autoplay"] |= {"palette_max_delta_e": 8.0, "approved_colours": []}
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    browser, _ = sign_in(url, "mia@aqua.example")
    page = browser.get(f"{url}/briefs/aqua-launch")
    waiting = re.findall(
        r'name="kind" value="colour">\s*<input type="hidden" name="value" value="(#[0-9A-F]{6})"', page.text
    )
    assert len(waiting) >= 2 and not set(waiting) & set(load_brief(path).palette)
    token, approvals = csrf_of(page), f"{url}/briefs/aqua-launch/approvals"
    browser.post(approvals, data={"csrf": token, "kind": "colour", "value": waiting[0], "decision": "approve"})
    browser.post(approvals, data={"csrf": token, "kind": "colour", "value": waiting[1], "decision": "reject",
                                  "note": "too close to a rival's blue"})  # fmt: skip
    page = browser.get(f"{url}/briefs/aqua-launch")
    assert f"Approve {waiting[0]}" not in page.text and f"Approve {waiting[1]}" not in page.text
    brief = load_brief(path)
    assert brief.autoplay.approved_colours == [waiting[0]] and brief.autoplay.rejected_colours == [waiting[1]]
    assert list(ledger.actions("aqua-launch")["reason"].tail(1)) == [
        f"colour {waiting[1]}: too close to a rival's blue"
    ]
    forged = {"csrf": token, "kind": "colour", "value": "#123456", "decision": "approve"}  # never proposed
    assert browser.post(approvals, data=forged).status_code == 400


def new_brief_fields(page: requests.Response, **overrides) -> dict:
    """What a marketer fills into the new-brief form (the brand's account and page are there already)."""
    fields = {
        "csrf": csrf_of(page),
        "staged": re.search(r'name="staged" value="([^"]*)"', page.text).group(1),
        "name": "aqua-flask",
        "brand": "Aqua Co",
        "product_url": "https://shop.example.com/products/flask",
        "product_message": "Light enough for every trail.",
        "product_orientation": "auto",
        "palette_hex_0": "#1F6FEB",
        "palette_hex_1": "#E8D5C4",
        "goal": "ctr",
        "daily_budget": "250",
        "currency": "USD",
        "templates": ["studio", "podium", "hero"],
        "aspects": ["1:1"],
        "channels": ["meta", "shopify"],
        "meta_account_id": re.search(r'name="meta_account_id" value="([^"]*)"', page.text).group(1),
        "meta_page_id": re.search(r'name="meta_page_id" value="([^"]*)"', page.text).group(1),
        "meta_campaign_id": "120000000000077",
        "shopify_shop": re.search(r'name="shopify_shop" value="([^"]*)"', page.text).group(1),
        "shopify_product_id": "gid://shopify/Product/8000000000077",
        "autoplay_on": "1",
    }
    return fields | overrides


def test_a_marketer_creates_a_brief_with_its_model_and_a_refused_form_keeps_her_upload(console, deployment_home):
    url, ledger = console
    settings, _ = deployment_home
    browser, _ = sign_in(url, "mia@aqua.example")
    form = browser.get(f"{url}/new-brief")
    assert form.status_code == 200 and "<option selected>Aqua Co</option>" in form.text and "Other Co" not in form.text
    assert 'value="act_1000000000001"' in form.text  # the brand's ad account comes from its other brief
    model = ("bottle.glb", WATERBOTTLE.read_bytes(), "model/gltf-binary")
    catalog = sorted(p.name for p in settings.briefs_dir.iterdir())

    assert browser.post(f"{url}/new-brief", data=new_brief_fields(form, csrf="forged"),
                        files={"model": model}).status_code == 403  # fmt: skip
    refused = browser.post(f"{url}/new-brief", data=new_brief_fields(form, daily_budget="lots"), files={"model": model})
    assert refused.status_code == 400 and 'id="err-daily_budget"' in refused.text
    assert "Uploaded: model.glb" in refused.text and 'value="Light enough for every trail."' in refused.text
    assert sorted(p.name for p in settings.briefs_dir.iterdir() if p.name != ".staging") == catalog  # none written

    no_file = {"model": ("", b"", "application/octet-stream")}  # what a browser sends when no file is chosen
    created = browser.post(f"{url}/new-brief", data=new_brief_fields(refused), files=no_file, allow_redirects=False)
    assert created.status_code == 303 and created.headers["location"] == "/briefs/aqua-flask", re.findall(
        r"class=\"error\"[^>]*>([^<]*)", created.text
    )
    brief = load_brief(settings.briefs_dir / "aqua-flask" / "brief.yaml")
    assert brief.product.model.name == "model.glb" and brief.daily_budget == 250.0 and brief.autoplay.activate
    assert brief.meta.account_id == "act_1000000000001" and brief.meta.campaign_id == "120000000000077"
    assert (brief.product.model.parent / "brief.yaml").is_file()
    assert not list((settings.briefs_dir / ".staging").iterdir())  # the staged folder became the brief's
    assert ledger.brief_versions("aqua-flask").iloc[0]["actor"] == "console:mia@aqua.example"
    assert ledger.actions("aqua-flask")["action"].tolist() == ["create"]
    page = browser.get(f"{url}/briefs/aqua-flask")
    assert page.status_code == 200 and "No rendered variant yet" in page.text
    assert "aqua-flask" in browser.get(f"{url}/").text

    again = browser.post(f"{url}/new-brief", data=new_brief_fields(form), files={"model": model})
    assert again.status_code == 400 and "exists already" in again.text
    other = browser.post(f"{url}/new-brief", data=new_brief_fields(form, name="rival", brand="Other Co"),
                         files={"model": model})  # fmt: skip
    assert other.status_code == 400 and "you create briefs for Aqua Co only" in other.text
    script = browser.post(f"{url}/new-brief", data=new_brief_fields(form, name="scripted"),
                          files={"model": ("x.blend", b"BLENDER-v300", "application/octet-stream")})  # fmt: skip
    assert script.status_code == 400 and "x.blend: the model must be a .glb or .obj file" in script.text
    assert not (settings.briefs_dir / "rival").exists() and not (settings.briefs_dir / "scripted").exists()
    declared = http.client.HTTPConnection(*url.removeprefix("http://").split(":"))  # 200 MiB declared, none sent
    declared.putrequest("POST", "/new-brief")
    for key, value in {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(200 * 2**20),
                       "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())}.items():  # fmt: skip
        declared.putheader(key, value)
    declared.endheaders()
    assert declared.getresponse().status == 413
    assert browser.post(f"{url}/new-brief", data={"csrf": csrf_of(form)}).status_code == 415


def test_two_creates_of_one_name_at_once_make_one_brief_and_paths_outside_the_catalog_are_never_probed(
    console, deployment_home
):
    from concurrent.futures import ThreadPoolExecutor

    url, ledger = console
    settings, _ = deployment_home
    browser, _ = sign_in(url, "mia@aqua.example")
    form = browser.get(f"{url}/new-brief")
    model = {"model": ("bottle.glb", WATERBOTTLE.read_bytes(), "model/gltf-binary")}

    def create(_: int) -> int:
        return browser.post(
            f"{url}/new-brief", data=new_brief_fields(form), files=model, allow_redirects=False
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(create, range(4)))
    assert codes.count(303) == 1 and set(codes) == {303, 400}, codes
    assert sorted(p.name for p in (settings.briefs_dir / "aqua-flask").iterdir()) == ["brief.yaml", "model.glb"]
    probe = browser.post(f"{url}/new-brief", data=new_brief_fields(form, name="../../etc"), files=model)
    assert probe.status_code == 400 and "exists already" not in probe.text and 'id="err-name"' in probe.text


def test_oversized_crowded_or_foreign_bodies_are_refused_before_anything_is_read_into_a_form(console):
    url, ledger = console
    browser, answer = sign_in(url, "mia@aqua.example")
    token = csrf_of(answer)
    pause = f"{url}/briefs/aqua-launch/pause"
    assert browser.post(pause, data={"csrf": token, "reason": "x" * 200_000}).status_code == 413
    crowded = "&".join(f"f{i}=1" for i in range(1000)) + f"&csrf={token}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert browser.post(pause, data=crowded, headers=headers).status_code == 413
    assert browser.post(pause, json={"csrf": token}).status_code == 415
    assert browser.post(pause, data=b"csrf=\xff\xfe", headers=headers).status_code == 400
    assert not ledger.is_paused("aqua-launch")
    assert browser.get(f"{url}/briefs/aqua-launch/thumb/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_guesses_made_at_once_all_count_towards_the_lockout(deployment_home):
    from concurrent.futures import ThreadPoolExecutor

    from connectors.users import UserError

    settings, _ = deployment_home
    users = UserStore(EventStore(settings.event_store_path))

    def guess(_):
        try:
            users.sign_in("mia@aqua.example", "not her password")
        except UserError as exc:
            return str(exc)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(guess, range(MAX_FAILED)))
    with pytest.raises(UserError, match="locked"):
        users.sign_in("mia@aqua.example", PASSWORD)


def test_a_turntable_plays_from_its_poster_in_the_leaderboard(console, tmp_path):
    url, ledger = console
    folder = Path(ledger.variants("aqua-launch").iloc[0]["render_dir"])
    (folder / "still.jpg").rename(folder / "poster.jpg")
    (folder / "turntable.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    ledger._execute("update variants set kind = 'turntable' where brief = 'aqua-launch'")
    browser, _ = sign_in(url, "mia@aqua.example")
    page = browser.get(f"{url}/briefs/aqua-launch")
    assert re.search(r'<video src="/briefs/aqua-launch/video/[\w-]+" poster="/briefs/aqua-launch/thumb/', page.text)
    vid = ledger.variants("aqua-launch").iloc[0]["variant_id"]
    video = browser.get(f"{url}/briefs/aqua-launch/video/{vid}")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert browser.get(f"{url}/briefs/aqua-launch/thumb/{vid}").headers["content-type"] == "image/jpeg"
    assert browser.get(f"{url}/briefs/other-launch/video/vother").status_code == 404


def test_a_deployment_with_no_brief_yet_shows_an_empty_home_and_the_new_brief_form(tmp_path):
    settings = load_settings({"AUTOPLAY_HOME": str(tmp_path / "home"), "AUTOPLAY_BRIEFS": str(tmp_path / "briefs")})
    settings.home.mkdir(parents=True)
    settings.briefs_dir.mkdir()
    UserStore(EventStore(settings.event_store_path)).add("new@brand.example", "marketer", ["New Co"], PASSWORD)
    with BackgroundServer(create_app(settings), name="console") as server:
        browser, home = sign_in(server.url, "new@brand.example")
        assert home.status_code == 200 and "No brief of your brands has run yet" in home.text
        form = browser.get(f"{server.url}/new-brief")
        assert form.status_code == 200 and 'name="meta_account_id" value=""' in form.text  # nothing to copy from


def test_a_brief_whose_ads_are_all_paused_does_not_read_live(console):
    url, ledger = console
    browser, home = sign_in(url, "mia@aqua.example")
    assert '<span class="state ready-to-publish">ready to publish</span>' in home.text  # rendered, no ad yet
    ledger.record_intent("aqua-launch", "vaqua-", "meta")
    ledger.record_publication("aqua-launch", "vaqua-", "meta", ad_id="ad-1", adset_id="as-1", status="ACTIVE")
    assert '<span class="state live">live</span>' in browser.get(f"{url}/").text
    ledger.set_status("aqua-launch", "vaqua-", "meta", "PAUSED")  # as after its last generation
    page = browser.get(f"{url}/briefs/aqua-launch")
    assert '<span class="state not-delivering">not delivering</span>' in page.text


def test_a_garbage_model_with_a_glb_name_is_refused_beside_the_product_and_nothing_reaches_the_catalog(
    console, deployment_home
):
    url, _ = console
    settings, _ = deployment_home
    browser, _ = sign_in(url, "mia@aqua.example")
    form = browser.get(f"{url}/new-brief")
    fake = {"model": ("bottle.glb", b"glTF" + b"\x00" * 8 + b"not a model at all" * 100, "model/gltf-binary")}
    refused = browser.post(f"{url}/new-brief", data=new_brief_fields(form, name="garbage"), files=fake)
    assert refused.status_code == 400 and 'id="err-product"' in refused.text
    assert not (settings.briefs_dir / "garbage").exists()
