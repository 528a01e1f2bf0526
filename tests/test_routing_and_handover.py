"""The loop reaches the office that acts (issue 19): in the demo city a warning of each level (street office, county
bureau, city department) lands in that office's own channel and nowhere else; each is transferred once by its
holder and answered by the receiver, who finds it in its own outbox; a return goes one level up with its reason;
the old holder's later answer is refused; every hand-over is in the warning's history; the happiness list totals
every applied disposition. On SQLite and PostgreSQL, through real folder channels."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from _city import monitored_city, rows

from lidm import workdays
from lidm.contracts.load import load_catalog
from lidm.monitor.feedback import collect_dispositions
from lidm.monitor.happiness import build_assistance_records
from lidm.monitor.push import push_warnings
from lidm.monitor.routing import holder_for, offices

PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
ANSWERED_AT = datetime(2026, 12, 1, 10, 0, 0)
REPUSHED_AT = datetime(2026, 12, 2, 9, 0, 0)
FINAL_AT = datetime(2026, 12, 3, 15, 0, 0)
CONSUMERS = load_catalog().consumers
HEADER = [
    "warning_id",
    "outcome",
    "transfer_to",
    "handover_reason",
    "assistance_kind",
    "amount",
    "granted_on",
    "reason",
    "handler",
    "disposed_at",
    "id_number",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def city(request, tmp_path_factory, pg_url):
    home = tmp_path_factory.mktemp(f"routing-{request.param}") / "home"
    settings = monitored_city(home, pg_url if request.param == "postgresql" else None)
    push_warnings(settings, now=PUSHED_AT)
    return settings


def _pushed(settings, holder: str) -> dict[str, dict[str, str]]:
    """The warnings the office found in its outbox, by warning_id (the machine CSV of every push)."""
    out = {}
    for path in sorted((settings.home / "channels" / holder / "outbox").glob("warnings_*.csv")):
        if path.name.endswith((".zh.csv", ".answer.csv")):
            continue
        with path.open(encoding="utf-8-sig", newline="") as f:
            out |= {r["warning_id"]: r for r in csv.DictReader(f)}
    return out


def _answer(settings, holder: str, name: str, answers: list[dict[str, object]]) -> Path:
    inbox = settings.home / "channels" / holder / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / f"disposition_{name}.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, HEADER)
        writer.writeheader()
        for a in answers:
            writer.writerow({k: a.get(k) for k in HEADER})
    return path


def _one(settings, level: str, exclude: tuple[str, ...] = ()) -> sa.Row:
    """A pushed warning of the level; at county level one of a department other than civil affairs."""
    found = rows(
        settings,
        "SELECT warning_id, rule_id, target_department, target_consumer, district_code, street_code, due_date "
        "FROM platform_warning WHERE action_level = :level AND status = 'pushed' ORDER BY warning_id",
        level=level,
    )
    other = level == "street" or level == "city"
    return next(r for r in found if r.warning_id not in exclude and (other or r.target_department != "civil_affairs"))


def test_each_level_lands_in_its_own_office_channel_and_nowhere_else(city) -> None:
    levels = dict(rows(city, "SELECT action_level, count(*) FROM platform_warning GROUP BY 1"))
    assert set(levels) == {"city", "county", "street"}
    for level in ("street", "county", "city"):
        w = _one(city, level)
        expected, landed = holder_for(CONSUMERS, w.target_department, level, w.district_code, w.street_code)
        assert (w.target_consumer, landed) == (expected, level)
        member = CONSUMERS.members.get(w.target_consumer)
        if level != "city":
            assert member.kind == level and w.district_code in member.districts
            assert level == "county" or w.street_code in member.streets
            assert w.warning_id not in _pushed(city, w.target_department)  # the city bureau is not sent it
        assert w.warning_id in _pushed(city, w.target_consumer)
    # A county bureau's outbox holds only its own districts' and department's warnings.
    bureau = next(m for m in CONSUMERS.members.values() if m.kind == "county" and _pushed(city, m.id))
    for r in _pushed(city, bureau.id).values():
        assert (r["district_code"], r["target_department"]) in {(d, bureau.acts_for) for d in bureau.districts}


def test_transferred_once_answered_by_the_receiver_and_a_return_goes_up_with_its_reason(city) -> None:
    picked = {level: _one(city, level) for level in ("street", "county", "city")}
    returned = _one(city, "street", exclude=(picked["street"].warning_id,))
    # Street office → another department (lands at that department's county bureau: no street office of it);
    # county bureau → civil affairs (its county bureau); city department → civil affairs (the city bureau).
    to = {"street": "hr_social_security", "county": "civil_affairs", "city": "civil_affairs"}
    for level, w in picked.items():
        pushed = _pushed(city, w.target_consumer)[w.warning_id]
        answer = dict(
            warning_id=w.warning_id,
            outcome="transferred",
            transfer_to=to[level],
            handover_reason="not_our_duty",
            reason="不属本单位职责，转相关部门",
            handler="经办人甲",
            disposed_at=ANSWERED_AT,
            id_number=pushed["id_number"],
        )
        _answer(city, w.target_consumer, f"transfer_{level}", [answer])
    pushed = _pushed(city, returned.target_consumer)[returned.warning_id]
    back = dict(
        warning_id=returned.warning_id,
        outcome="returned",
        handover_reason="wrong_area",
        reason="本人已不在本街道居住",
        handler="经办人乙",
        disposed_at=ANSWERED_AT,
        id_number=pushed["id_number"],
    )
    _answer(city, returned.target_consumer, "return", [back])
    collected = collect_dispositions(city, now=ANSWERED_AT)
    assert collected.totals()["applied"] == 4 and collected.totals()["refused"] == 0

    now_held = {
        r.warning_id: r
        for r in rows(
            city,
            "SELECT warning_id, target_consumer, target_department, action_level, status, due_date FROM "
            "platform_warning WHERE warning_id IN (:a, :b, :c, :d)",
            a=picked["street"].warning_id,
            b=picked["county"].warning_id,
            c=picked["city"].warning_id,
            d=returned.warning_id,
        )
    }
    for level, w in picked.items():
        held = now_held[w.warning_id]
        if level == "city":
            assert held.target_consumer == "civil_affairs"
        else:
            assert held.target_consumer == offices(CONSUMERS, to[level], "county")[w.district_code]
        assert (held.target_department, held.status) == (to[level], "raised")
        # Deadline rule: as many working days as the first holder had, counted from the hand-over day.
        had = workdays.working_days_between(date(2026, 11, 27), date.fromisoformat(str(w.due_date)[:10]))
        assert had >= 5 and str(held.due_date)[:10] == workdays.add_working_days(ANSWERED_AT.date(), had).isoformat()
    up = now_held[returned.warning_id]
    assert up.target_consumer == offices(CONSUMERS, "civil_affairs", "county")[returned.district_code]
    assert up.action_level == "county"
    events = rows(
        city,
        "SELECT warning_id, status, detail FROM lidm_warning_event WHERE status IN ('transferred', 'returned')",
    )
    assert {(e.warning_id, e.status) for e in events} == {
        *((w.warning_id, "transferred") for w in picked.values()),
        (returned.warning_id, "returned"),
    }
    back_event = next(e for e in events if e.status == "returned")
    assert "wrong_area" in back_event.detail and returned.target_consumer in back_event.detail

    # The old holder answers again: refused, the warning is not its any more.
    stale = dict(answer, warning_id=picked["county"].warning_id, outcome="informed_not_applied")
    stale.update(transfer_to=None, handover_reason=None, disposed_at=FINAL_AT)
    stale["id_number"] = _pushed(city, picked["county"].target_consumer)[picked["county"].warning_id]["id_number"]
    _answer(city, picked["county"].target_consumer, "stale", [stale])
    again = collect_dispositions(city, now=FINAL_AT)
    assert again.totals()["refused"] == 1 and again.refusals["other_department"] == 1

    # The receivers find them in their own outbox and answer; each warning is disposed once.
    push_warnings(city, now=REPUSHED_AT)
    for level, w in picked.items():
        holder = now_held[w.warning_id].target_consumer
        pushed = _pushed(city, holder)[w.warning_id]
        grant = dict(
            warning_id=w.warning_id,
            outcome="granted",
            assistance_kind="temporary_assistance",
            amount=1000 + len(level),
            granted_on="2026-12-03",
            handler="经办人丙",
            disposed_at=FINAL_AT,
            id_number=pushed["id_number"],
        )
        _answer(city, holder, f"final_{level}", [grant])
    final = collect_dispositions(city, now=FINAL_AT)
    assert final.totals()["applied"] == 3 and final.totals()["refused"] == 0
    statuses = rows(
        city,
        "SELECT status, count(*) FROM platform_warning WHERE warning_id IN (:a, :b, :c) GROUP BY 1",
        a=picked["street"].warning_id,
        b=picked["county"].warning_id,
        c=picked["city"].warning_id,
    )
    assert dict(statuses) == {"disposed": 3}

    # The happiness list totals every applied disposition that granted something.
    engine = sa.create_engine(city.effective_central_url)
    try:
        build_assistance_records(engine, load_catalog(), now=FINAL_AT)
    finally:
        engine.dispose()
    [(granted,)] = rows(city, "SELECT sum(amount) FROM platform_disposition WHERE outcome = 'granted'")
    [(listed,)] = rows(city, "SELECT sum(amount) FROM platform_assistance_record WHERE source = 'warning'")
    assert float(listed) == float(granted) > 0
