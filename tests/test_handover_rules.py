"""The hand-over rules on their own (issue 19), the refusals a department meets when it transfers or returns a
warning it should not: to itself, to a name that is no department or office, to an office of another district,
a return by the lead department, a fourth hand-over; the end-to-end path is test_routing_and_handover.py."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from lidm.central.schema import warning_event
from lidm.contracts.load import load_catalog
from lidm.monitor import handover

CATALOG = load_catalog()
DEPARTMENTS = list(CATALOG["platform.warning"].field("target_department").enum or ())
STREET = "430104003"  # 橘子洲街道, 岳麓区


def _warning(holder: str, level: str) -> dict:
    return {
        "warning_id": "W1",
        "target_consumer": holder,
        "action_level": level,
        "district_code": "430104",
        "street_code": STREET,
        "status": "pushed",
        "raised_at": datetime(2026, 11, 27, 20),
        "due_date": date(2026, 12, 11),
    }


def _answer(outcome: str, transfer_to: str | None = None) -> dict:
    return {"outcome": outcome, "transfer_to": transfer_to, "handover_reason": "not_our_duty"}


@pytest.mark.parametrize(
    ("holder", "level", "answer", "expected"),
    [
        ("civil_affairs.430104003", "street", _answer("transferred", "hr_social_security"), "hr_social_security.yuelu"),
        ("civil_affairs.430104003", "street", _answer("returned"), "civil_affairs.yuelu"),
        ("education.yuelu", "county", _answer("returned"), "education"),
        ("medical_insurance", "city", _answer("returned"), "civil_affairs"),
        ("education.yuelu", "county", _answer("transferred", "civil_affairs.yuelu"), "civil_affairs.yuelu"),
    ],
)
def test_a_hand_over_lands_where_the_rules_say(holder, level, answer, expected) -> None:
    to = handover.destination(CATALOG.consumers, DEPARTMENTS, _warning(holder, level), answer)
    assert to[0] == expected


@pytest.mark.parametrize(
    ("holder", "level", "answer", "code"),
    [
        ("civil_affairs", "city", _answer("returned"), "cannot_return"),
        ("education.yuelu", "county", _answer("transferred", "education"), "transfer_to_self"),
        ("education.yuelu", "county", _answer("transferred", "education.yuelu"), "transfer_to_self"),
        ("education.yuelu", "county", _answer("transferred", "nobody"), "unknown_transfer_to"),
        ("education.yuelu", "county", _answer("transferred", "civil_affairs.furong"), "wrong_area"),
        ("education.yuelu", "county", _answer("transferred", "platform"), "unknown_transfer_to"),
    ],
)
def test_a_hand_over_that_cannot_be_made_is_refused_with_its_code(holder, level, answer, code) -> None:
    to = handover.destination(CATALOG.consumers, DEPARTMENTS, _warning(holder, level), answer)
    assert to[0] is None and to[1][0] == code


def test_a_warning_changes_hands_at_most_three_times_and_a_disposed_one_not_at_all() -> None:
    engine = sa.create_engine("sqlite://")
    warning_event.create(engine)
    warn, answer = _warning("education.yuelu", "county"), _answer("transferred", "civil_affairs")
    with engine.begin() as conn:
        for n in range(handover.MAX_HANDOVERS):
            assert handover.check(conn, CATALOG, warn, answer)[1] is None, n
            conn.execute(
                sa.insert(warning_event).values(
                    warning_id="W1", status="transferred", at=datetime(2026, 12, 1), actor="t"
                )
            )
        assert handover.check(conn, CATALOG, warn, answer)[1][0] == "no_handover"
        assert handover.check(conn, CATALOG, warn, answer, fresh=False) == (None, None)  # a correction moves nothing
        disposed = dict(_warning("education.yuelu", "county"), warning_id="W2", status="disposed")
        assert handover.check(conn, CATALOG, disposed, answer)[1][0] == "no_handover"
