"""The console in a real browser (Playwright driving Debian's chromium, headless), as a marketer meets it:
`autoplay console` over a copy of the shared loop run's home (two brands), and `autoplay up` turning the loop
while she creates a brief and watches its variants render.

Screenshots of every page, at desktop and phone width, go to bench/out/console/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from connectors.event_store import EventStore
from connectors.ledger import Ledger
from connectors.processes import free_port
from tests.conftest import REPO, WATERBOTTLE, deployment_env
from tests.pipelines.loop_run import OTHER

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "bench" / "out" / "console"
PASSWORD = "a marketer's long passphrase"


def autoplay(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "autoplay"), *args], env=env, input=stdin, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def console_url(loop_run, tmp_path_factory):
    settings, _, _ = loop_run
    home = tmp_path_factory.mktemp("console") / "home"
    home.mkdir()
    shutil.copy(settings.event_store_path, home / settings.event_store_path.name)  # its own ledger to change
    ledger = Ledger(EventStore(home / settings.event_store_path.name))
    for row in ledger.briefs().itertuples():  # and its own copy of the brief files, to edit
        folder = home.parent / "briefs" / row.brief
        folder.mkdir(parents=True)
        data = yaml.safe_load(Path(row.path).read_text())
        if row.brief == "waterbottle-launch":  # a new template family the marketer has not approved yet
            data["templates"] = [*data["templates"], "spotlight"]
            data["autoplay"]["approved_templates"] = [t for t in data["templates"] if t != "spotlight"]
        (folder / "brief.yaml").write_text(yaml.safe_dump(data))
        ledger.record_brief(row.brief, row.brand, str(folder / "brief.yaml"), json.loads(row.spec))
    env = {**os.environ, "AUTOPLAY_HOME": str(home)}
    added = autoplay(env, "users", "add", "mia@aqua.example", "--role", "marketer", "--brand", "Aqua Co",
                     "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "autoplay"), "console", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(url, server, 30)
    yield url, env
    server.terminate()
    server.wait(timeout=10)


def wait_for(url: str, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            requests.get(f"{url}/signin", timeout=1)
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline and server.poll() is None, "the console did not start"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def up_console(tmp_path_factory, broker):
    """`autoplay up` (daemon, sandboxes, console) over an empty catalog, with one marketer of Aqua Co."""
    root = tmp_path_factory.mktemp("up")
    (root / "briefs").mkdir()
    env = deployment_env(root, broker)
    added = autoplay(env, "users", "add", "mia@aqua.example", "--role", "marketer", "--brand", "Aqua Co",
                     "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    port = free_port()
    log = open(root / "up.log", "w")
    command = ["up", "--no-ui", "--console-port", str(port), "--day-seconds", "3600"]  # one day: the first plan
    server = subprocess.Popen([str(Path(sys.executable).parent / "autoplay"), *command], env=env, cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for(url, server, 120)
    yield url, root, env
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def images_loaded(page) -> list[bool]:
    return page.eval_on_selector_all("main img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")


def test_a_marketer_signs_in_reads_her_brief_pauses_it_and_signs_out(console_url, browser):
    url, env = console_url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{url}/")
    assert page.url.startswith(f"{url}/signin")  # every page needs a session
    shoot(page, "signin")
    # keyboard only: the email field has focus, Tab reaches the password, Enter signs in
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type("mia@aqua.example")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/")
    briefs = page.locator("ul.briefs li")
    assert briefs.count() == 1 and "waterbottle-launch" in briefs.inner_text()
    assert re.search(r"Spent today \d+\.\d\d of the 600\.00 USD cap", briefs.inner_text())  # spend against the cap
    assert OTHER not in page.content()  # another brand's brief is not shown
    assert all(images_loaded(page))  # the current leader's thumbnail
    shoot(page, "home")

    page.click("text=waterbottle-launch")
    page.wait_for_url(f"{url}/briefs/waterbottle-launch")
    rows = page.locator("table").first.locator("tbody tr")
    assert rows.count() >= 4
    loaded = images_loaded(page)
    assert loaded and all(loaded), "every variant's thumbnail loads"
    captions = page.locator("figure figcaption").all_inner_texts()
    # one chart per factor the brief varied (it runs stills in 1:1 only: no kind, aspect or placement chart)
    assert captions == ["ctr by template", "ctr by colour", "ctr by colour family", "Learning curve: ctr by generation"]
    assert page.locator("figure svg").count() == len(captions)
    lifts = page.inner_text("ul.lifts")
    assert "against podium (Aqua Co" in lifts and "against podium (all brands" in lifts  # what wins, with intervals
    shoot(page, "brief")
    states = page.eval_on_selector_all("table tbody td.state", "cells => cells.map(c => c.textContent)")
    assert set(states) <= {"live", "paused", "retired", "in review", "rendering", "qa failed"}, states

    page.set_viewport_size({"width": 390, "height": 844})  # phone width: nothing wider than the screen
    for path, name in (("/", "home-phone"), ("/briefs/waterbottle-launch", "brief-phone")):
        page.goto(url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 391, path
        shoot(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.click("button:has-text('Approve spotlight')")  # a new template family waits for her approval
    page.wait_for_url(f"{url}/briefs/waterbottle-launch")
    assert page.locator("text=Approve spotlight").count() == 0
    page.click("text=Edit brief")
    page.wait_for_url(f"{url}/briefs/waterbottle-launch/edit")
    page.fill("#daily_budget", "six hundred")
    assert problems == [], problems
    page.click("button:has-text('Save')")
    assert "valid number" in page.inner_text("#err-daily_budget")  # the error beside its field
    problems.clear()  # (the browser logs the 400 of a refused form itself)
    shoot(page, "edit-error")
    page.fill("#daily_budget", "450")
    page.click("button:has-text('Save')")
    assert "Saved as version" in page.inner_text("main")
    shoot(page, "edit-saved")
    brief_file = Path(env["AUTOPLAY_HOME"]).parent / "briefs" / "waterbottle-launch" / "brief.yaml"
    on_disk = yaml.safe_load(brief_file.read_text())
    assert on_disk["daily_budget"] == 450.0 and "spotlight" in on_disk["autoplay"]["approved_templates"]
    page.goto(f"{url}/briefs/waterbottle-launch")

    page.click("text=Pause")
    page.wait_for_url(f"{url}/briefs/waterbottle-launch/pause")
    shoot(page, "confirm-pause")
    page.fill("#reason", "out of stock")
    page.click("button:has-text('Yes, pause')")
    assert "paused in the ledger" in page.inner_text("main")
    shoot(page, "paused")
    status = autoplay(env, "status", "--brief", "waterbottle-launch", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["briefs"][0]["paused"] is True
    audit = json.loads(autoplay(env, "audit", "--brief", "waterbottle-launch", "--json").stdout)["actions"]
    assert (audit[-1]["action"], audit[-1]["actor"]) == ("pause", "console:mia@aqua.example")

    assert problems == [], problems
    page.goto(f"{url}/briefs/{OTHER}")  # (the browser logs the 404 itself)
    assert page.locator("h1").inner_text().startswith("no brief")  # another brand's brief: not found
    shoot(page, "not-found")
    page.goto(f"{url}/")
    page.click("button:has-text('Sign out')")
    page.wait_for_url(f"{url}/signin")
    page.goto(f"{url}/briefs/waterbottle-launch")
    assert page.url.startswith(f"{url}/signin")
    context.close()


def sign_in(page, url: str) -> None:
    page.goto(f"{url}/signin")
    page.fill("#email", "mia@aqua.example")
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{url}/")


def test_a_marketer_creates_a_brief_and_watches_its_variants_render_with_thumbnails(up_console, browser):
    url, root, env = up_console
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, url)
    page.click("text=New brief")
    page.wait_for_url(f"{url}/new-brief")
    shoot(page, "new-brief")
    page.fill("#name", "aqua-flask")
    page.set_input_files("#model", str(WATERBOTTLE))
    page.fill("#product_url", "https://shop.example.com/products/flask")
    page.fill("#product_message", "Light enough for every trail.")
    page.fill("input[name=palette_hex_0]", "#1F6FEB")
    page.fill("input[name=palette_hex_1]", "#E8D5C4")
    for aspect in ("4:5", "9:16"):  # square only: six thumbnails
        page.uncheck(f"input[name=aspects][value='{aspect}']")
    page.check("input[name=autoplay_on]")
    for field, value in (("meta_account_id", "act_1000000000001"), ("meta_page_id", "1000000000002"),
                         ("meta_campaign_id", "120000000000001"), ("shopify_shop", "aqua-co.myshopify.com"),
                         ("shopify_product_id", "gid://shopify/Product/8000000000001")):  # fmt: skip
        page.fill(f"#{field}", value)
    page.click("button:has-text('Create brief')")  # no daily cap yet: refused beside the field, upload kept
    assert "Input should be a valid number" in page.inner_text("#err-daily_budget")
    assert "Uploaded: model.glb" in page.inner_text("main")
    assert not (root / "briefs" / "aqua-flask").exists()
    problems.clear()  # (the browser logs the 400 of a refused form itself)
    shoot(page, "new-brief-error")
    page.fill("#daily_budget", "300")
    page.click("button:has-text('Create brief')")
    page.wait_for_url(f"{url}/briefs/aqua-flask")
    assert (root / "briefs" / "aqua-flask" / "model.glb").is_file()  # in the catalog the daemon reads

    deadline, seen_rendering = time.monotonic() + 420, False
    while time.monotonic() < deadline:  # the daemon plans, renders and publishes; she reloads the page
        page.reload()
        if page.locator("tr.rendering").count() and not seen_rendering:
            seen_rendering = True
            shoot(page, "new-brief-rendering")
        loaded = images_loaded(page)
        if len(loaded) >= 6 and all(loaded):
            break
        time.sleep(3)
    else:
        pytest.fail("the new brief's variants did not appear with thumbnails: " + (root / "up.log").read_text()[-3000:])
    assert seen_rendering, "its variants showed as rendering before their thumbnails came"
    shoot(page, "new-brief-rendered")
    while time.monotonic() < deadline:  # then the day's run publishes them
        states = page.eval_on_selector_all("table tbody td.state", "cells => cells.map(c => c.textContent)")
        if len(states) >= 6 and set(states) <= {"live", "in review"}:
            break
        assert set(states) <= {"ready to publish", "paused", "live", "in review"}, states  # published PAUSED first
        time.sleep(3)
        page.reload()
    else:
        pytest.fail(f"the new brief's variants were not published: {states}")
    shoot(page, "new-brief-live")
    page.goto(f"{url}/")
    assert "aqua-flask" in page.inner_text("ul.briefs") and all(images_loaded(page))

    page.goto(f"{url}/briefs/aqua-flask")  # pause it: its ads are paused on Meta, and `autoplay status` says so
    page.click("text=Pause")
    page.fill("#reason", "a recall")
    page.click("button:has-text('Yes, pause')")
    assert "paused 6 ads and their ad sets on Meta" in page.inner_text("main")
    status = autoplay(env, "status", "--brief", "aqua-flask", "--json")
    assert status.returncode == 0, status.stderr
    [brief] = json.loads(status.stdout)["briefs"]
    meta_ads = [a for a in brief["ads"] if a["channel"] == "meta"]
    assert brief["paused"] is True and len(meta_ads) == 6 and {a["status"] for a in meta_ads} == {"PAUSED"}

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{url}/new-brief")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    shoot(page, "new-brief-phone")
    assert problems == [], problems
    context.close()
