"""The Feeds page: what an operator sees for every feed (last batch, counts, reasons, freshness, contract
version) and for the monitoring loop (open and overdue warnings per department), from the SDK, in a
FastAPI test client, and inside the real Airflow UI in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _free_port
from lidm_samples.demo import demo_settings, run_demo

from lidm.central.schema import dataset_table
from lidm.contracts import load_catalog
from lidm.contracts.model import LogicalType
from lidm.pipeline import run_feed
from lidm.sources.localstore import LocalStore
from lidm.status import district_warnings, feed_status, warning_status
from lidm.testkit import kinds_in

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = Path(sys.executable).with_name("airflow")
FEEDS = ["health.population", "health.deaths", "civil_affairs.low_income_roster", "hr_social_security.unemployment"]


def _warning_rows(contract) -> list[dict]:
    """Three warnings for civil affairs (one overdue, one disposed) and one for education."""
    table = dataset_table(contract, sa.MetaData())
    filler = {LogicalType.DATE: date(2026, 11, 1), LogicalType.TIMESTAMP: datetime(2026, 11, 1, 9)}
    base = {c.name: "x" for c in table.columns if not c.nullable}
    for c in table.columns:
        field = contract.field(c.name) if c.name in contract.field_names else None
        if not c.nullable and field is not None and field.type in filler:
            base[c.name] = filler[field.type]
    today = datetime.now(UTC).date()
    cases = [
        ("W1", "civil_affairs", "pushed", today + timedelta(days=3), "430102"),
        ("W2", "civil_affairs", "acknowledged", today - timedelta(days=2), "430104"),
        ("W3", "civil_affairs", "disposed", today - timedelta(days=9), "430102"),
        ("W4", "education", "raised", today + timedelta(days=5), "430102"),
    ]
    return [
        base
        | {"warning_id": w, "target_department": d, "status": s, "due_date": due, "district_code": code}
        | {"_retired_batch": None}
        for w, d, s, due, code in cases
    ]


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    """A demo central database with one late feed, one rejected delivery and a few warnings."""
    home = tmp_path_factory.mktemp("demo")
    sources, _ = run_demo(home, size=600, seed=11, bad=3, feeds=FEEDS)
    settings = demo_settings(home)
    drop = Path(sources.connections["civil_affairs_drop"].removeprefix("file://"))
    store = LocalStore(drop)
    store.put("roster_20261128.csv", b"")
    store.put("roster_20261128.csv.ok", b"")
    [rejected] = run_feed("civil_affairs.low_income_roster", settings, connections=sources.connections)
    assert rejected.status == "rejected"
    engine = sa.create_engine(settings.effective_central_url)
    old = datetime.now(UTC) - timedelta(days=10)
    warning = load_catalog()["platform.warning"]
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lidm_batch SET started_at = :t, finished_at = :t WHERE feed = 'health.deaths'"), {"t": old}
        )
        conn.execute(dataset_table(warning, sa.MetaData()).insert(), _warning_rows(warning))
    engine.dispose()
    return home, settings, sources


def test_status_has_counts_reasons_freshness_and_versions(central):
    _, settings, sources = central
    by_feed = {s.feed: s for s in feed_status(settings)}
    population = by_feed["health.population"]
    written = sources.by_dataset()["health.population"]
    assert population.state == "fresh" and population.contract_version == population.last_version == "2.0.0"
    assert (population.extracted, population.quarantined) == (written.rows, written.expected_quarantine)
    assert population.loaded == written.rows - written.expected_quarantine
    assert population.top_reasons and all(n >= 1 for _, n in population.top_reasons)
    assert by_feed["health.deaths"].state == "late"  # 10 days old against a 2-day freshness
    roster = by_feed["civil_affairs.low_income_roster"]
    assert roster.state == "failing" and roster.last.reason_code == "empty_file"
    assert (roster.extracted, roster.loaded, roster.quarantined) == (0, 0, 0)  # the rejected delivery's own
    assert roster.last_good.loaded > 0 and roster.last_loaded == roster.last_good.at  # the load before it, apart
    assert roster.rejected_since_load == 1
    assert by_feed["education.student_enrollment"].state == "never"
    warnings = {w.department: (w.open, w.overdue) for w in warning_status(settings)}
    assert warnings == {"civil_affairs": (2, 1), "education": (1, 0)}


def test_page_marks_late_and_rejected_feeds_and_shows_no_personal_data(central):
    from fastapi.testclient import TestClient

    from lidm.integrations.feeds_page import create_app

    _, settings, _ = central
    page = TestClient(create_app(lambda: settings)).get("/feeds").text
    assert '<tr class="late" data-feed="health.deaths">' in page
    assert '<tr class="failing" data-feed="civil_affairs.low_income_roster">' in page and "empty_file" in page
    assert "27</b> feeds" in page and "2</b>\nlate, rejected or not reconciled" in page
    assert "expected within 2 days" in page
    assert kinds_in(page) == []


def test_the_page_names_districts_where_the_json_keeps_codes(central):
    import re

    from fastapi.testclient import TestClient

    from lidm.integrations.feeds_page import create_app

    _, settings, _ = central
    assert [(d.district_code, d.district, d.open, d.overdue) for d in district_warnings(settings)] == [
        ("430102", "芙蓉区", 2, 0),
        ("430104", "岳麓区", 1, 1),
    ]
    client = TestClient(create_app(lambda: settings))
    table = re.search(r"<table id='districts'>.*?</table>", client.get("/feeds").text, re.S)[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", table)
    assert cells == ["芙蓉区", "2", "0", "岳麓区", "1", "1"]  # names for people, no bare code in a cell
    assert "430102" in table  # kept for scripts, in a data attribute


def test_a_rejected_delivery_shows_its_own_reason_and_counts_beside_the_load_before_it(central):
    """The roster loaded one batch, then its next delivery (an empty file) was rejected."""
    import re

    from fastapi.testclient import TestClient

    from lidm.integrations.feeds_page import create_app

    _, settings, sources = central
    page = TestClient(create_app(lambda: settings)).get("/feeds").text
    row = re.search(r'<tr class="failing" data-feed="civil_affairs.low_income_roster">.*?</tr>', page, re.S)[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert cells[3:6] == ["0", "0", "0"]  # what the rejected delivery brought: nothing loaded, nothing held
    rejected, _, earlier = cells[6].partition("last loaded:")
    assert "rejected:" in rejected and "empty_file" in rejected and "roster_20261128.csv" in rejected
    written = sources.by_dataset()["civil_affairs.low_income_roster"]
    loaded = written.rows - written.expected_quarantine
    assert f"{written.rows:,} extracted, {loaded:,} loaded, {written.expected_quarantine:,} quarantined" in earlier
    assert "empty_file" not in earlier and "×" in earlier  # the load's own quarantine reasons, not the rejection


def test_status_json_is_the_feeds_page_json(central, monkeypatch):
    """`lidm status --json` and /lidm/api/feeds: the same rows, from one function (lidm.status.feed_row)."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from lidm import cli
    from lidm.integrations.feeds_page import create_app

    _, settings, _ = central
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    out = CliRunner().invoke(cli.app, ["status", "--json"])
    assert out.exit_code == 1  # a feed is late, one rejected: said in JSON as in the table
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    api = TestClient(create_app(lambda: settings)).get("/api/feeds").json()
    assert lines == api["feeds"] + api["warnings"]
    feeds = [r for r in lines if r["kind"] == "feed"]
    assert len({tuple(r) for r in feeds}) == 1 and len(feeds) == 27  # every row the same keys
    by_feed = {r["feed"]: r for r in feeds}
    roster = by_feed["civil_affairs.low_income_roster"]
    assert roster["state"] == "failing" and roster["last_batch"]["reason_code"] == "empty_file"
    assert roster["last_batch"]["loaded"] == 0 and roster["last_loaded_batch"]["loaded"] > 0
    assert datetime.fromisoformat(roster["last_data_at"]) == datetime.fromisoformat(
        roster["last_loaded_batch"]["finished_at"]
    )
    assert datetime.fromisoformat(roster["last_data_at"]).tzinfo is not None
    population = by_feed["health.population"]
    assert population["state"] == "fresh" and isinstance(population["last_batch"]["extracted"], int)
    assert all(isinstance(r["rows"], int) for r in population["last_batch"]["top_reasons"])
    assert by_feed["education.student_enrollment"]["last_batch"] is None
    assert [r for r in lines if r["kind"] == "warnings"] == [
        {"kind": "warnings", "department": "civil_affairs", "open": 2, "overdue": 1},
        {"kind": "warnings", "department": "education", "open": 1, "overdue": 0},
    ]
    assert kinds_in(out.stdout) == []


def test_lidm_status_says_the_same_and_fails_when_a_feed_needs_attention(central):
    _, settings, _ = central
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIDM_")} | {
        "LIDM_CENTRAL_URL": settings.effective_central_url,
        "COLUMNS": "200",
    }
    out = subprocess.run(
        [str(Path(sys.executable).with_name("lidm")), "status"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 1, out.stdout + out.stderr
    lines = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if line.count("│") > 3}
    # The states as the README and the Feeds page name them (the JSON keeps the codes late and failing).
    assert "LATE" in lines["health.deaths"] and "REJECTED" in lines["civil_affairs.low_income_roster"]
    assert "warnings for civil_affairs: 2 open, 1 overdue" in out.stdout


# --------------------------------------------------------------------------- in the Airflow UI


READER, READER_PASSWORD = "reader", "feeds-reader-pw"


@contextmanager
def _api_server(settings, airflow_home: Path, **airflow_env: str) -> Iterator[str]:
    """`airflow api-server` on a loopback port, with this repo's plugins and the demo central database."""
    (airflow_home / "dags").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIDM_"))} | {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "LIDM_CENTRAL_URL": settings.effective_central_url,
        "LIDM_KEYRING": str(settings.effective_keyring),
    }
    env |= {f"AIRFLOW__{k.upper()}": v for k, v in airflow_env.items()}
    migrated = subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=env, cwd=airflow_home, capture_output=True, text=True, timeout=240
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    port = _free_port()
    log = (airflow_home / "api-server.log").open("w")
    proc = subprocess.Popen(
        [str(AIRFLOW), "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env,
        cwd=airflow_home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while _status(f"{base}/lidm/api/feeds") not in (200, 401):  # 401: mounted, and it asks who is calling
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"api-server did not mount /lidm:\n{(airflow_home / 'api-server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _status(url: str, headers: dict[str, str] | None = None) -> int | None:
    """The HTTP status of a GET (None when nothing answers)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.fixture(scope="module")
def api_server(central, tmp_path_factory):
    """Everyone is an admin (SIMPLE_AUTH_MANAGER_ALL_ADMINS): the browser gets a token just by opening the UI."""
    _, settings, _ = central
    with _api_server(
        settings, tmp_path_factory.mktemp("airflow-ui"), core__simple_auth_manager_all_admins="True"
    ) as base:
        yield base


@pytest.fixture(scope="module")
def locked_api_server(central, tmp_path_factory):
    """Airflow's simple auth manager with one viewer, READER, whose password is set up front."""
    _, settings, _ = central
    home = tmp_path_factory.mktemp("airflow-locked")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({READER: READER_PASSWORD}))
    with _api_server(
        settings,
        home,
        core__simple_auth_manager_all_admins="False",
        core__simple_auth_manager_users=f"{READER}:viewer",
        core__simple_auth_manager_passwords_file=str(passwords),
    ) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Debian's chromium and chromium-driver are not installed; run `make services`", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1100",
    ):
        options.add_argument(arg)
    with webdriver.Chrome(service=Service(driver), options=options) as chrome:
        yield chrome


@pytest.mark.airflow
def test_the_feeds_page_in_the_airflow_ui(api_server, browser, artifacts_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{api_server}/plugin/lidm-feeds")
    wait = WebDriverWait(browser, 60)
    nav = wait.until(ec.presence_of_element_located((By.XPATH, "//a[.//*[normalize-space(text())='Feeds']]")))
    assert nav.is_displayed() and nav.get_attribute("href").endswith("/plugin/lidm-feeds")  # in the UI's navigation
    frame = wait.until(ec.presence_of_element_located((By.TAG_NAME, "iframe")))
    browser.switch_to.frame(frame)
    wait.until(ec.presence_of_element_located((By.ID, "feeds")))

    def row(feed: str):
        return browser.find_element(By.CSS_SELECTOR, f"tr[data-feed='{feed}']")

    deaths = row("health.deaths")
    assert "late" in deaths.get_attribute("class") and "LATE" in deaths.text
    red = deaths.find_element(By.CSS_SELECTOR, "td").value_of_css_property("background-color")
    assert red != row("health.population").find_element(By.CSS_SELECTOR, "td").value_of_css_property("background-color")
    roster = row("civil_affairs.low_income_roster")
    assert "REJECTED" in roster.text and "empty_file" in roster.text
    population = row("health.population").text
    assert "on time" in population and "2.0.0" in population
    assert "no data yet" in row("education.student_enrollment").text
    warnings = browser.find_element(By.ID, "warnings").text
    assert "civil_affairs 2 1" in warnings and "education 1 0" in warnings
    assert kinds_in(browser.find_element(By.TAG_NAME, "body").text) == []
    browser.switch_to.default_content()
    shot = artifacts_dir / "feeds-page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_an_unreachable_central_database_is_said_plainly_without_the_url():
    from fastapi.testclient import TestClient

    from lidm.config import Settings
    from lidm.integrations.feeds_page import create_app

    down = Settings(central_url="postgresql+psycopg://lidm:s3cret@127.0.0.1:1/central")
    response = TestClient(create_app(lambda: down)).get("/feeds")
    assert response.status_code == 503
    assert "central database could not be read" in response.text and "s3cret" not in response.text


@pytest.mark.airflow
def test_the_feeds_page_answers_only_a_user_airflow_lets_read_dags(locked_api_server):
    base = locked_api_server
    pages = [f"{base}/lidm/feeds", f"{base}/lidm/api/feeds"]
    assert _status(f"{base}/api/v2/dags") == 401  # what Airflow's own API says to a stranger
    for page in pages:
        assert _status(page) == 401, page  # no token
        assert _status(page, {"Cookie": "_token=garbage"}) == 401, page
        assert _status(page, {"Authorization": "Bearer not.a.jwt"}) == 401, page
    login = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": READER, "password": READER_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=30) as r:
        token = json.load(r)["access_token"]
    forged = token[: token.rindex(".") + 1] + "AAAA" + token[token.rindex(".") + 5 :]  # another signature
    for page in pages:
        assert _status(page, {"Authorization": f"Bearer {token}"}) == 200, page
        assert _status(page, {"Cookie": f"_token={token}"}) == 200, page  # as the UI's iframe sends it
        assert _status(page, {"Authorization": f"Bearer {forged}"}) == 401, page
    with urllib.request.urlopen(urllib.request.Request(pages[1], headers={"Authorization": f"Bearer {token}"})) as r:
        assert "health.deaths" in {f["feed"] for f in json.load(r)["feeds"]}
