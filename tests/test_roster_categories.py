"""A roster member may hold several categories (civil_affairs.low_income_roster 4.0.0 ``categories``): the adapter
reads them from one cell, and a rule asks "holds one of" or "holds none of" them, on any database."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lidm import LOW_INCOME_CATEGORY_SHORT, code_list
from lidm.central.schema import dataset_table
from lidm.contracts.load import load_catalog
from lidm.monitor.engine import Compiled
from lidm.monitor.rules import Rule

CATALOG = load_catalog()
ROSTER = CATALOG["civil_affairs.low_income_roster"]


def test_a_cell_of_labels_becomes_comma_separated_codes_and_an_unknown_one_is_kept_for_validation() -> None:
    convert = code_list("全部类别", LOW_INCOME_CATEGORY_SHORT)
    cells = pa.array(["低保、防返贫监测", "特困", " 低保边缘 ；刚性支出困难 ", "低保,低保", "低保、低收入", None, ""])
    assert convert.apply(cells).to_pylist() == [
        "dibao,return_risk",
        "tekun",
        "dibao_edge,rigid_expense",
        "dibao",
        "dibao,低收入",  # refused by the contract's pattern, so the row is quarantined with a reason
        None,
        None,
    ]
    assert convert.encode("dibao,return_risk") == "低保、防返贫监测"


def _rule(where: dict[str, object]) -> Rule:
    return Rule.model_validate(
        {
            "id": "holds_test",
            "version": "1.0.0",
            "title": "t",
            "hardship_type": "other",
            "department": "civil_affairs",
            "urgency": "low",
            "due_days": 10,
            "summary": "s",
            "subject": {"feed": ROSTER.id, "category": "category", "where": {"status": "active", **where}},
        }
    )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_holds_and_holds_none_read_every_category_a_member_holds(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_clean_url") if backend == "postgres" else "sqlite://"
    engine = sa.create_engine(url)
    table = dataset_table(ROSTER, sa.MetaData())
    held = {"a": "dibao", "b": "dibao,return_risk", "c": "return_risk", "d": "other_hardship", "e": "dibao_edge"}
    try:
        table.create(engine)
        with engine.begin() as conn:
            for token, categories in held.items():
                conn.execute(
                    table.insert().values(
                        id_number_token=token * 64,  # a token is 32 bytes, written and read as hex
                        household_id_token=token * 64,
                        relation_to_head="head",
                        category=categories.split(",")[0],
                        categories=categories,
                        district_code="430102",
                        street_code="430102001",
                        approval_date=date(2024, 1, 1),
                        monthly_amount=0,
                        status="active",
                        updated_at=datetime(2026, 11, 1),
                        _batch_id="b0000000-0000-4000-8000-000000000000",  # a uuid, as lidm names a batch
                        _row_digest="d" * 64,
                    )
                )

        def flagged(where: dict[str, object]) -> set[str]:
            with engine.connect() as conn:
                found = conn.execute(Compiled(_rule(where), CATALOG, date(2026, 11, 27)).tokens()).scalars()
                return {t[0] for t in found}

        assert flagged({"categories": {"holds": ["return_risk"]}}) == {"b", "c"}
        assert flagged({"categories": {"holds": "dibao"}}) == {"a", "b"}
        # dibao_edge is not dibao: whole codes only
        assert flagged({"categories": {"holds_none": ["dibao", "tekun", "dibao_edge"]}}) == {"c", "d"}
        assert flagged({"categories": {"holds": ["dibao", "dibao_edge"], "holds_none": ["return_risk"]}}) == {"a", "e"}
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def test_a_member_leaving_dibao_can_be_answered_as_moved_to_the_edge_categories() -> None:
    """一(三) "经本人同意可直接转入最低生活保障边缘家庭、刚性支出困难家庭": final, with a reason, granting nothing."""
    from lidm.monitor.checks import inconsistent_outcome
    from lidm.monitor.dispositions import FINAL

    assert "transferred_to_edge" in CATALOG["platform.disposition"].field("outcome").enum
    assert "transferred_to_edge" in FINAL
    assert inconsistent_outcome({"outcome": "transferred_to_edge", "reason": "本人同意，转入低保边缘认定"}) is None
    assert inconsistent_outcome({"outcome": "transferred_to_edge"}) == "outcome transferred_to_edge needs a reason"
