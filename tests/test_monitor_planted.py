"""Every monitoring rule finds exactly the cases planted in a synthetic city, on SQLite and on PostgreSQL.

The ground truth (lidm_samples.planted) is computed in Python from the world and the generators' decisions, never
from SQL nor from the rule files; the monitor runs over what the demo's pipeline loaded. Precision and recall must
both be 100% for every rule, and no near miss (someone meeting only some of a rule's conditions) may be flagged.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from lidm_samples.demo import demo_settings, run_demo
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.planted import RULES, expected_warnings, near_misses, planted_cases
from lidm_samples.world import World, build_world

from lidm.central import db
from lidm.contracts.load import load_catalog
from lidm.keys import load_keyring
from lidm.monitor import evaluate, load_rules
from lidm.protect import Protector

# Two seeds and two sizes, small enough to stay fast: every rule, the ones whose subject is not the roster included
# (lidm_samples.planted_missing), must find exactly its planted cases in each city.
CITIES = [(1500, 20261127), (2500, 7)]
AS_OF: date = REFERENCE_DATE
CATALOG = load_catalog()


@cache
def _world(size: int, seed: int) -> World:
    return build_world(size, seed)


def _tokens(home: Path, ids: list[str]) -> dict[str, str]:
    """token -> raw ID number, tokenized the way the pipeline protects id_number (the demo's keyring)."""
    protector = Protector(CATALOG["civil_affairs.low_income_roster"], load_keyring(demo_settings(home)))
    return dict(zip(protector.token(pa.array(ids, type=pa.string())).to_pylist(), ids, strict=True))


def _monitor(home: Path, size: int, seed: int, central_url: str | None = None) -> dict[str, set[str]]:
    """The demo city's feeds loaded without faults, then every rule evaluated: flagged tokens per rule."""
    _, results = run_demo(home, size=size, seed=seed, bad=0, central_url=central_url)
    assert all(r.status == "loaded" and r.quarantined == 0 for r in results), [
        (r.feed, r.status, r.quarantined, r.top_reasons) for r in results if r.status != "loaded" or r.quarantined
    ]
    engine = db.connect(demo_settings(home, central_url))
    try:
        with engine.connect() as conn:
            return evaluate(conn, load_rules(catalog=CATALOG), AS_OF)
    finally:
        engine.dispose()


def _compare(home: Path, world: World, found: dict[str, set[str]]) -> None:
    """Per rule: flagged == expected, and no near miss flagged; one message naming every rule that differs."""
    assert set(found) == set(RULES), "a rule without ground truth, or ground truth without a rule"
    raw = _tokens(home, [p.id_number for p in world.people])
    expected, near = expected_warnings(world, AS_OF), near_misses(world)
    problems = []
    for rule in RULES:
        flagged = {raw.get(t, f"<token {t[:12]}… of nobody in the city>") for t in found[rule]}
        extra, missed, near_hit = flagged - expected[rule], expected[rule] - flagged, flagged & near[rule]
        if extra or missed or near_hit:
            problems.append(
                f"{rule}: flagged {len(flagged)}, expected {len(expected[rule])}; "
                f"false positives {sorted(extra)}, missed {sorted(missed)}, near misses flagged {sorted(near_hit)}"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("size", "seed"), CITIES)
def test_every_rule_flags_exactly_the_planted_cases_on_sqlite(tmp_path: Path, size: int, seed: int) -> None:
    _compare(tmp_path, _world(size, seed), _monitor(tmp_path, size, seed))


@pytest.mark.postgres
@pytest.mark.parametrize(("size", "seed"), CITIES)
def test_every_rule_flags_exactly_the_planted_cases_on_postgresql(
    tmp_path: Path, pg_clean_url: str, size: int, seed: int
) -> None:
    world = _world(size, seed)
    found = _monitor(tmp_path, size, seed, pg_clean_url)
    engine = sa.create_engine(pg_clean_url)
    try:
        assert engine.dialect.name == "postgresql"
        with engine.connect() as conn:  # the rules really ran against the loaded city in PostgreSQL
            assert conn.execute(sa.text("SELECT COUNT(*) FROM civil_affairs_low_income_roster")).scalar_one() > 0
    finally:
        engine.dispose()
    _compare(tmp_path, world, found)


@pytest.mark.parametrize(("size", "seed"), [(1500, 20261127), (1500, 7), (5000, 20261127), (5000, 7)])
def test_the_world_plants_cases_and_near_misses_for_every_rule(size: int, seed: int) -> None:
    """At least two planted cases and one near miss per rule, consistent with the ground truth."""
    world = build_world(size, seed)
    expected, planted, near = expected_warnings(world), planted_cases(world), near_misses(world)
    assert set(expected) == set(planted) == set(near) == set(RULES)
    for rule in RULES:
        assert len(planted[rule]) >= 2, rule
        assert planted[rule] <= expected[rule], (rule, sorted(planted[rule] - expected[rule]))
        assert near[rule], rule
        assert not near[rule] & expected[rule], (rule, sorted(near[rule] & expected[rule]))
    assert build_world(size, seed).roster == world.roster  # deterministic, planted cases included
