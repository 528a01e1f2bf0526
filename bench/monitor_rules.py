"""Rule evaluation at city scale: every monitoring rule over 10M people and a 300k-member roster.

    .venv/bin/python bench/monitor_rules.py [--population 10000000 --roster 300000 | --scale 0.01]
        [--central-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--with-token-indexes]
        [--timeout 120] [--as-of 2025-06-30] [--json PATH] [--keep | --database NAME]

Makes a throwaway database on the server, migrates it, and fills the central table of every feed a rule in rules/
reads (plus health_population) directly in PostgreSQL with set-based INSERT ... SELECT over generate_series: not
through the pipeline, which is the feed benchmark's job. The older feeds have a profile here (City.fills: sizes and
distributions modelled on the city); whatever a profile leaves out that a rule reads, and every feed without a
profile, is filled from its contract and what the rules ask of it (rule_fills.py), so a new rule or feed is
benchmarked without editing this file. Tokens are deterministic 64-hex-digit strings shared between tables (decoded
to bytes where the migrated table stores tokens as bytea), so the same person joins across feeds; roster households
have 1-5 members; every rule matches someone.

The anchor is PostgreSQL's own COPY of the roster measured in the same run (COPY TO STDOUT into a file, then
COPY FROM that file into an empty copy of the table). For each rule: the dry evaluation (the rule's
Compiled(...).tokens() executed in the session run_monitor uses, lidm.monitor.engine.RULE_SESSION: the matched
count, seconds); then the full run_monitor twice: the first raises the warnings, the second finds nothing new (the
steady state), wall time, each rule's share, and each run over the dry queries' sum. A rule's rows/s is the sum of
the rows of the tables it reads over its seconds; the ratio is that over the COPY rows/s. A statement running past
--timeout is cancelled and reported as such (run_monitor then runs without the rules that timed out). Deadlines
past the installed holiday calendar are counted on weekdays (the stopgap LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH).

It prints, per clause, the join tokens (id_number_token, or household_id_token for `on: household`) no index leads
with: the migrations index them all (0009, 0022), so the list should be empty. --with-token-indexes would create
any it finds and measure again (before/after). --keep keeps the scratch database, and --database NAME measures on
such a kept one without loading it again (migrated to the head first, warnings emptied). Not a test: figures depend
on the machine and the server's settings (printed with the results).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import secrets
import statistics
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rule_fills
from rule_fills import Fill

from lidm import workdays
from lidm.central import db
from lidm.central.schema import dataset_table
from lidm.contracts.load import load_catalog
from lidm.errors import ConfigError
from lidm.monitor import lifecycle
from lidm.monitor.engine import RULE_SESSION, Compiled, tune
from lidm.monitor.lifecycle import run_monitor
from lidm.monitor.rules import Rule, due_dates, load_rules

WARNING_TABLES = ("platform_warning", "lidm_warning_state", "lidm_warning_event")
CITY_POPULATION = 10_000_000
CITY_ROSTER = 300_000
POPULATION = "health.population"
ROSTER = "civil_affairs.low_income_roster"
BATCH = "bec00000-0000-4000-8000-000000000000"  # a batch id (a uuid, as lidm names one)
DISTRICTS = 12  # 440101 .. 440112; the first URBAN are urban districts
URBAN = 7
PRIMES = (7919, 104729, 1299709, 15485863, 32452843, 49979687, 67867967, 86028121, 122949823, 141650939)
SERVER_SETTINGS = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "random_page_cost",
    "jit",
    "max_parallel_workers_per_gather",
    "autovacuum",
)

# Roster households repeat a pattern of 20 members: sizes 1,1,1,2,2,3,4,5,1 (9 households, 2.2 people each).
_HH_OF_POS = "{0,1,2,3,3,4,4,5,5,5,6,6,6,6,7,7,7,7,7,8}"
_RANK_OF_POS = "{0,0,0,0,1,0,1,0,1,2,0,1,2,3,0,1,2,3,4,0}"
_SIZE_OF_POS = "{1,1,1,2,2,2,2,3,3,3,4,4,4,4,5,5,5,5,5,1}"
_HEAD_OF_HH = "{0,1,2,3,5,7,10,14,19}"


# -- the synthetic city --------------------------------------------------------------------------------------------
def _functions(population: int, roster: int) -> list[str]:
    """SQL helpers of the scratch database. Person q in [0, population): q < roster is roster member q."""
    r = roster
    fn = "LANGUAGE sql IMMUTABLE PARALLEL SAFE"
    return [
        # a token as 64 hex digits, like the keyed HMAC-SHA256 tokens of the pipeline; decoded to its 32 bytes where
        # the column is bytea (rule_fills.completed_columns), read back as hex (City.hx)
        f"CREATE FUNCTION b_tok(k text, q bigint) RETURNS text {fn} AS $$ SELECT md5(k || q) || md5(q || k) $$",
        # a deterministic draw in [0, n)
        f"CREATE FUNCTION b_rnd(salt text, q bigint, n bigint) RETURNS bigint {fn} AS "
        "$$ SELECT (hashtext(salt || ':' || q) & 2147483647)::bigint % n $$",
        f"CREATE FUNCTION b_hh(q bigint) RETURNS bigint {fn} AS $$ SELECT CASE WHEN q < {r} "
        f"THEN (q / 20) * 9 + ('{_HH_OF_POS}'::int[])[q % 20 + 1] ELSE {r} + q / 3 END $$",
        f"CREATE FUNCTION b_rank(q bigint) RETURNS int {fn} AS $$ SELECT CASE WHEN q < {r} "
        f"THEN ('{_RANK_OF_POS}'::int[])[q % 20 + 1] ELSE (q % 3)::int END $$",
        f"CREATE FUNCTION b_hhsize(q bigint) RETURNS int {fn} AS $$ SELECT CASE WHEN q < {r} "
        f"THEN ('{_SIZE_OF_POS}'::int[])[q % 20 + 1] ELSE 3 END $$",
        f"CREATE FUNCTION b_head(hh bigint) RETURNS bigint {fn} AS "
        f"$$ SELECT (hh / 9) * 20 + ('{_HEAD_OF_HH}'::int[])[hh % 9 + 1] $$",
        f"CREATE FUNCTION b_relation(q bigint) RETURNS text {fn} AS "
        "$$ SELECT (ARRAY['head','spouse','child','child','parent'])[b_rank(q) + 1] $$",
        f"CREATE FUNCTION b_dist(hh bigint) RETURNS text {fn} AS "
        f"$$ SELECT '4401' || lpad((1 + b_rnd('dist', hh, {DISTRICTS}))::text, 2, '0') $$",
        f"CREATE FUNCTION b_urban(hh bigint) RETURNS boolean {fn} AS "
        f"$$ SELECT b_rnd('dist', hh, {DISTRICTS}) < {URBAN} $$",
        f"CREATE FUNCTION b_street(hh bigint) RETURNS text {fn} AS "
        "$$ SELECT b_dist(hh) || lpad((1 + b_rnd('street', hh, 25))::text, 3, '0') $$",
        # low-income category per household: dibao 45%, tekun 10%, dibao_edge 25%, rigid 8%, return_risk 7%
        f"CREATE FUNCTION b_cat(hh bigint) RETURNS text {fn} AS $$ SELECT CASE "
        "WHEN b_rnd('cat', hh, 100) < 45 THEN 'dibao' WHEN b_rnd('cat', hh, 100) < 55 THEN 'tekun' "
        "WHEN b_rnd('cat', hh, 100) < 80 THEN 'dibao_edge' WHEN b_rnd('cat', hh, 100) < 88 THEN 'rigid_expense' "
        "WHEN b_rnd('cat', hh, 100) < 95 THEN 'return_risk' ELSE 'other_hardship' END $$",
        f"CREATE FUNCTION b_idmask(q bigint) RETURNS text {fn} AS "
        "$$ SELECT b_dist(b_hh(q)) || '********' || lpad((q % 10000)::text, 4, '0') $$",
        f"CREATE FUNCTION b_namemask(q bigint) RETURNS text {fn} AS "
        "$$ SELECT (ARRAY['王*明','李*','张*华','刘*芳','陈*','杨*强','赵*丽','黄*'])[q % 8 + 1] $$",
        f"CREATE FUNCTION b_phonemask(q bigint) RETURNS text {fn} AS "
        "$$ SELECT '1' || (ARRAY['38','39','58','86','37'])[q % 5 + 1] || '****' || lpad((q % 9973)::text, 4, '0') $$",
    ]


def _stride(n: int, salt: str) -> int:
    """A step coprime with n: (offset + i * step) % n visits n distinct values."""
    start = zlib.crc32(salt.encode()) % len(PRIMES)
    for k in range(len(PRIMES)):
        step = PRIMES[(start + k) % len(PRIMES)]
        if math.gcd(step, n) == 1:
            return step % n or 1
    return 1


def _offset(salt: str, n: int) -> int:
    return zlib.crc32(salt.encode()) % n


class City:
    """The synthetic city's tables as INSERT ... SELECT statements; sizes scale with population and roster."""

    def __init__(self, population: int, roster: int, as_of: date) -> None:
        self.P, self.R, self.as_of = population, roster, as_of
        self.O = population - roster  # people off the roster
        self.R3 = 3 * math.ceil(roster / 3)  # first off-roster household head
        self.HR = (roster // 20) * 9  # roster households whose members all fit in the roster
        self.bytea_tokens = False  # token columns stored as bytea (read from the migrated roster table by load)

    def hx(self, column: str) -> str:
        """A token column read back from a filled table, as the 64 hex digits the fills compute with."""
        return f"encode({column}, 'hex')" if self.bytea_tokens else column

    # sizes: per roster member and per person off the roster (the 10M / 300k city's figures in the comments)
    def nr(self, per_member: float) -> int:
        return min(self.R, round(per_member * self.R))

    def no(self, per_person: float) -> int:
        return min(self.O, round(per_person * self.O))

    # -- expression helpers ----------------------------------------------------------------------------------
    @staticmethod
    def series(n: int) -> str:
        """Rows 0 .. n-1, filled SPLIT rows per INSERT (fill_table): one INSERT … SELECT over millions of rows grows
        its backend by about 2.4 kB a row until it ends (10M people: killed by the kernel at 14 GB)."""
        return f"generate_series(@LO@::bigint, LEAST(@HI@, {n}) - 1)"

    def day(self, days: str) -> str:
        return f"(DATE '{self.as_of.isoformat()}' - ({days})::int)"

    def ts(self, salt: str) -> str:
        return f"(TIMESTAMP '{self.as_of.isoformat()} 02:00' - b_rnd('{salt}', g.i, 525600) * INTERVAL '1 minute')"

    @staticmethod
    def pct(salt: str, of: str = "g.i") -> str:
        return f"b_rnd('{salt}', {of}, 100)"

    @staticmethod
    def pick(salt: str, shares: list[tuple[str, int]], of: str = "g.i") -> str:
        """A code drawn with the given percent shares (the last takes what is left)."""
        parts, acc = [], 0
        for value, share in shares[:-1]:
            acc += share
            parts.append(f"WHEN b_rnd('{salt}', {of}, 100) < {acc} THEN '{value}'")
        return f"(CASE {' '.join(parts)} ELSE '{shares[-1][0]}' END)"

    @staticmethod
    def money(salt: str, lo: int, hi: int, of: str = "g.i") -> str:
        return f"({lo} + b_rnd('{salt}', {of}, {(hi - lo) * 100}) / 100.0)::numeric(18,4)"

    @staticmethod
    def enc(length: int, tok: str = "g.tok") -> str:
        """A field's part of the row's sealed message, about as wide as the pipeline's (see _insert_sql)."""
        return f"rpad({tok}, {max(length - 40, 8)}, 'QmVuY2g+/=')"

    def person(self, prefix: str = "", tok: str = "g.tok", q: str = "g.q", name: bool = True) -> dict[str, str]:
        cols = {
            f"{prefix}id_number_token": tok,
            f"{prefix}id_number_enc": self.enc(70, tok),
            f"{prefix}id_number_masked": f"b_idmask({q})",
        }
        if name:
            cols |= {"name_enc": self.enc(52, tok), "name_masked": f"b_namemask({q})"}
        return cols

    # -- sources ---------------------------------------------------------------------------------------------
    def people(self, salt: str, n_roster: int, n_other: int, *, unique: bool = True, copies: str = "") -> str:
        """n_roster roster members then n_other other people; unique: each person at most once (for tables keyed
        on the person). ``copies`` cross-joins generate_series AS t for rows repeated per person."""
        r, o = self.R, self.O
        if unique:
            rq = f"({_offset(salt + 'r', r)} + i * {_stride(r, salt + 'r')}) % {r}"
            oq = f"{r} + ({_offset(salt + 'o', o)} + (i - {n_roster}) * {_stride(o, salt + 'o')}) % {o}"
        else:
            rq, oq = f"b_rnd('{salt}r', i, {r})", f"{r} + b_rnd('{salt}o', i, {o})"
        return self._source(n_roster, n_other, rq, oq, copies)

    def heads(self, salt: str, n_roster: int, n_other: int, *, copies: str = "") -> str:
        """Household heads: n_roster roster households then n_other others, each household once."""
        hr, ho = max(self.HR, 1), (self.P - self.R3) // 3
        n_roster, n_other = min(n_roster, self.HR), min(n_other, ho)
        rq = f"b_head(({_offset(salt + 'r', hr)} + i * {_stride(hr, salt + 'r')}) % {hr})"
        oq = f"{self.R3} + 3 * (({_offset(salt + 'o', ho)} + (i - {n_roster}) * {_stride(ho, salt + 'o')}) % {ho})"
        return self._source(n_roster, n_other, rq, oq, copies)

    def _source(self, n_roster: int, n_other: int, rq: str, oq: str, copies: str) -> str:
        """Rows i (and t) with the person q, household hh, on_roster and the tokens, as g."""
        series = f"{self.series(n_roster + n_other)} AS i" + (f" CROSS JOIN {copies}" if copies else "")
        tcol = ", t" if copies else ""
        return (
            f"(SELECT i{tcol}, q, hh, q < {self.R} AS on_roster, b_tok('p', q) AS tok, b_tok('h', hh) AS htok FROM ("
            f"SELECT i{tcol}, q, b_hh(q) AS hh FROM ("
            f"SELECT i{tcol}, CASE WHEN i < {n_roster} THEN {rq} ELSE {oq} END AS q FROM {series}"
            ") a OFFSET 0) b OFFSET 0) AS g"
        )

    # -- the tables ------------------------------------------------------------------------------------------
    def fills(self, tables: dict[str, str]) -> list[Fill]:
        """In load order: derived tables read the ones before them. ``tables`` maps feed -> table name."""
        t = tables
        y = self.as_of.year
        district = {"district_code": "b_dist(g.hh)"}
        street = {"street_code": "b_street(g.hh)"}
        term = "b_rnd('term', g.i, 200)"
        known = f"(g.on_roster OR {self.pct('idf')} >= 10)"  # a disease-fund patient who could be identified
        fills = [
            Fill(
                POPULATION,
                f"(SELECT i, i AS q, b_hh(i) AS hh, b_tok('p', i) AS tok, b_tok('h', b_hh(i)) AS htok "
                f"FROM {self.series(self.P)} AS i OFFSET 0) AS g",
                {
                    **self.person(),
                    "gender": "(CASE WHEN g.q % 2 = 0 THEN 'male' ELSE 'female' END)",
                    "birth_date": self.day("b_rnd('age', g.i, 36500)"),
                    "household_id_token": "g.htok",
                    "phone_enc": f"(CASE WHEN {self.pct('ph')} < 80 THEN {self.enc(52)} END)",
                    "phone_masked": f"(CASE WHEN {self.pct('ph')} < 80 THEN b_phonemask(g.q) END)",
                    **district,
                    **street,
                    "address_enc": self.enc(160),
                    "residence_status": self.pick(
                        "res", [("registered", 85), ("resident", 11), ("moved_out", 3), ("deceased", 1)]
                    ),
                },
            ),
            # 300k members in households of 1-5; categories per household; 92% active
            Fill(
                ROSTER,
                f"(SELECT i, i AS q, b_hh(i) AS hh, b_tok('p', i) AS tok, b_tok('h', b_hh(i)) AS htok "
                f"FROM {self.series(self.R)} AS i OFFSET 0) AS g",
                {
                    **self.person(),
                    "household_id_token": "g.htok",
                    "relation_to_head": "b_relation(g.q)",
                    "category": "b_cat(g.hh)",
                    # every category held, the primary first; a fifth of households hold a second one
                    "categories": "b_cat(g.hh) || (CASE WHEN b_rnd('c2', g.hh, 100) < 20 THEN ',' || "
                    "(ARRAY['return_risk','dibao_edge','tekun','dibao'])[1 + b_rnd('c3', g.hh, 4)] ELSE '' END)",
                    "urban_rural": "(CASE WHEN b_urban(g.hh) THEN 'urban' ELSE 'rural' END)",
                    **district,
                    **street,
                    "approval_date": self.day("30 + b_rnd('appr', g.hh, 3650)"),
                    "termination_date": f"(CASE WHEN {self.pct('st')} >= 93 THEN {self.day(term)} END)",
                    "monthly_amount": self.money("amt", 300, 1200),
                    # ~30% of urban households are certified in housing difficulty; rural ones are not assessed
                    "housing_difficulty": "(CASE WHEN b_urban(g.hh) THEN b_rnd('hd', g.hh, 100) < 30 END)",
                    "status": self.pick(
                        "st", [("active", 90), ("suspended", 3), ("gradual_exit", 2), ("terminated", 5)]
                    ),
                    "phone_enc": f"(CASE WHEN {self.pct('ph')} < 70 THEN {self.enc(52)} END)",
                    "phone_masked": f"(CASE WHEN {self.pct('ph')} < 70 THEN b_phonemask(g.q) END)",
                },
            ),
            # ~70k deaths a year; roster members are older and sicker: 4.2k of them
            Fill(
                "health.deaths",
                self.people("deaths", self.nr(0.014), self.no(0.00678)),
                {
                    **self.person(),
                    "gender": "(CASE WHEN g.q % 2 = 0 THEN 'male' ELSE 'female' END)",
                    "death_date": self.day("b_rnd('dd', g.i, 365)"),
                    "death_place": self.pick(
                        "dp", [("medical_institution", 60), ("home", 30), ("care_institution", 6), ("other", 4)]
                    ),
                    "cause_category": self.pick(
                        "cc",
                        [
                            ("cardio_cerebrovascular", 45),
                            ("neoplasm", 25),
                            ("respiratory", 12),
                            ("injury", 6),
                            ("other_disease", 12),
                        ],
                    ),
                    "reporting_institution": "'H' || lpad(b_rnd('ri', g.i, 400)::text, 4, '0')",
                    "report_date": self.day("b_rnd('dd', g.i, 365) - 3"),
                    "data_source": self.pick(
                        "ds", [("medical_certificate", 70), ("hukou_cancellation", 20), ("cremation", 10)]
                    ),
                    **district,
                    **street,
                },
            ),
            # ~100k registered unemployed, 12k on the roster
            Fill(
                "hr_social_security.unemployment",
                self.people("unemp", self.nr(0.04), self.no(0.00907)),
                {
                    "registration_id": "'U' || lpad(g.i::text, 10, '0')",
                    **self.person(),
                    "registration_date": self.day("b_rnd('rd', g.i, 1095)"),
                    "employment_difficulty": f"(g.on_roster OR {self.pct('ed')} < 20)",
                    "registration_status": self.pick("rs", [("registered", 75), ("deregistered", 25)]),
                    "benefit_months": "b_rnd('bm', g.i, 25)",
                    "benefit_monthly_amount": self.money("ba", 1200, 2000),
                    "benefit_status": self.pick(
                        "bs", [("receiving", 40), ("not_entitled", 30), ("expired", 20), ("terminated", 10)]
                    ),
                    **district,
                    **street,
                },
            ),
            # ~300k disability certificates, 60k held by roster members
            Fill(
                "disability_federation.disability_certificates",
                self.people("dis", self.nr(0.2), self.no(0.02474)),
                {
                    "certificate_no_token": "b_tok('c', g.q)",
                    "certificate_no_enc": self.enc(64),
                    "certificate_no_masked": "b_idmask(g.q) || '4' || (1 + b_rnd('dg', g.i, 4))",
                    **self.person(),
                    "gender": "(CASE WHEN g.q % 2 = 0 THEN 'male' ELSE 'female' END)",
                    "birth_date": self.day("b_rnd('age', g.q, 36500)"),
                    "disability_type": self.pick(
                        "dt",
                        [
                            ("physical", 50),
                            ("visual", 12),
                            ("hearing", 10),
                            ("intellectual", 10),
                            ("mental", 10),
                            ("speech", 2),
                            ("multiple", 6),
                        ],
                    ),
                    "disability_grade": "(1 + (ARRAY[0,1,1,2,2,2,3,3,3,3])[b_rnd('dg', g.i, 10) + 1])::text",
                    "issue_date": self.day("b_rnd('iss', g.i, 3650)"),
                    "certificate_status": self.pick("cs", [("valid", 85), ("expired", 10), ("cancelled", 5)]),
                    **district,
                    **street,
                },
            ),
        ]
        cert = (
            f"(SELECT row_number() OVER () AS i, {self.hx('c.id_number_token')} AS tok,"
            f" r.id_number_token IS NOT NULL AS on_roster,"
            f" c.disability_type, c.disability_grade, c.certificate_status, c.district_code, c.street_code,"
            f" c.id_number_masked, c.name_masked, r.category, {self.hx('r.household_id_token')} AS htok"
            f" FROM {t['disability_federation.disability_certificates']} AS c"
            f" LEFT JOIN {t[ROSTER]} AS r ON r.id_number_token = c.id_number_token) AS g"
        )
        subsidy = {
            **self.person(q="g.i"),
            "id_number_masked": "g.id_number_masked",
            "name_masked": "g.name_masked",
            "household_id_token": "g.htok",
            "disability_type": "g.disability_type",
            "disability_grade": "g.disability_grade",
            "approval_date": self.day("60 + b_rnd('sa', g.i, 1800)"),
            "start_date": self.day("30 + b_rnd('sa', g.i, 1800)"),
            "last_paid_month": f"to_char(DATE '{self.as_of.isoformat()}', 'YYYY-MM')",
            "status": self.pick("sst", [("active", 90), ("suspended", 4), ("terminated", 6)]),
            "district_code": "g.district_code",
            "street_code": "g.street_code",
        }
        fills += [
            # hardship-disability living subsidy: most roster holders of a valid certificate outside tekun
            Fill(
                "civil_affairs.hardship_disability_subsidy",
                cert,
                {
                    **subsidy,
                    "low_income_category": "coalesce(g.category, 'other_hardship')",
                    "monthly_amount": self.money("hm", 80, 200),
                },
                where=f"{self.pct('hds')} < (CASE WHEN g.on_roster THEN 85 ELSE 9 END)",
            ),
            # severe-disability care subsidy: grades 1-2, roster members or not (~50k)
            Fill(
                "civil_affairs.severe_disability_care_subsidy",
                cert,
                {
                    **subsidy,
                    "low_income_category": "g.category",
                    "care_mode": self.pick("cm", [("home", 85), ("day_care", 8), ("institution", 7)]),
                    "monthly_amount": self.money("cm", 100, 300),
                },
                where="g.disability_grade IN ('1', '2') AND "
                f"{self.pct('sdc')} < (CASE WHEN g.on_roster THEN 85 ELSE 55 END)",
            ),
            # ~1.5M students, 60k of roster households
            Fill(
                "education.student_enrollment",
                self.people("stu", self.nr(0.2), self.no(0.1485)),
                {
                    **self.person(),
                    "gender": "(CASE WHEN g.q % 2 = 0 THEN 'male' ELSE 'female' END)",
                    "birth_date": self.day("1100 + b_rnd('age', g.q, 6600)"),
                    "household_id_token": "g.htok",
                    "school_code": "'S' || lpad(b_rnd('sc', g.i, 2500)::text, 5, '0')",
                    "school_name": "'School ' || b_rnd('sc', g.i, 2500)",
                    "school_stage": self.pick(
                        "stage",
                        [
                            ("preschool", 15),
                            ("primary", 35),
                            ("junior", 17),
                            ("senior", 10),
                            ("secondary_vocational", 8),
                            ("higher", 15),
                        ],
                    ),
                    "grade": "1 + b_rnd('gr', g.i, 6)",
                    "enrollment_status": self.pick(
                        "es",
                        [("enrolled", 90), ("suspended", 2), ("dropped_out", 1), ("graduated", 5), ("transferred", 2)],
                    ),
                    "enrollment_date": self.day("b_rnd('ed', g.i, 2190)"),
                    "boarding": f"({self.pct('bo')} < 20)",
                    # a school's own hardship rating (家庭经济困难学生认定): 3% rated difficult in some degree
                    "hardship_level": self.pick(
                        "hl",
                        [
                            ("especially_difficult", 1),
                            ("difficult", 1),
                            ("generally_difficult", 1),
                            ("not_difficult", 97),
                        ],
                    ),
                    **district,
                },
            ),
        ]
        etok = self.hx("e.id_number_token")
        fills += [
            # education assistance: most roster students, some others; a second term for a fifth (~200k rows)
            Fill(
                "education.education_assistance",
                f"(SELECT row_number() OVER () AS i, {etok} AS tok, e.id_number_masked, e.name_masked,"
                f" {self.hx('e.household_id_token')} AS htok, e.school_stage, e.school_code, e.school_name,"
                f" e.district_code,"
                f" r.category, r.id_number_token IS NOT NULL AS on_roster, t"
                f" FROM {t['education.student_enrollment']} AS e"
                f" LEFT JOIN {t[ROSTER]} AS r ON r.id_number_token = e.id_number_token"
                f" CROSS JOIN generate_series(1, 2) AS t"
                f" WHERE b_rnd('ea', hashtext({etok}), 100) < (CASE WHEN r.id_number_token IS NOT NULL"
                f" THEN 85 ELSE 9 END) AND (t = 1 OR b_rnd('ea2', hashtext({etok}), 100) < 20)) AS g",
                {
                    "record_id": "'EA' || lpad(g.i::text, 10, '0')",
                    **self.person(q="g.i"),
                    "id_number_masked": "g.id_number_masked",
                    "name_masked": "g.name_masked",
                    "household_id_token": "g.htok",
                    "low_income_category": "g.category",
                    "school_stage": "g.school_stage",
                    "aid_kind": self.pick(
                        "ak",
                        [
                            ("grant", 50),
                            ("living_allowance", 25),
                            ("fee_waiver", 15),
                            ("student_loan", 7),
                            ("work_study", 3),
                        ],
                    ),
                    "amount": self.money("eam", 500, 4000),
                    "academic_year": f"'{y - 1}-{y}'",
                    "term": "(CASE WHEN g.t = 1 THEN 'autumn' ELSE 'spring' END)",
                    "school_code": "g.school_code",
                    "school_name": "g.school_name",
                    "approval_date": self.day(
                        f"(CASE WHEN {self.pct('eaw')} < 90 THEN b_rnd('ead', g.i, 360) "
                        "ELSE 370 + b_rnd('ead', g.i, 300) END)"
                    ),
                    "disbursement_status": self.pick("eds", [("paid", 80), ("approved", 15), ("revoked", 5)]),
                    "district_code": "g.district_code",
                },
            ),
            # ~3M settlements over two years; roster members use care more (450k of them)
            Fill(
                "health.medical_expenses",
                self.people("med", self.nr(1.5), self.no(0.2629), unique=False),
                {
                    "settlement_id": "'MS' || lpad(g.i::text, 11, '0')",
                    **self.person(),
                    "hospital_code": "'H' || lpad(b_rnd('hc', g.i, 400)::text, 4, '0')",
                    "hospital_name": "'Hospital ' || b_rnd('hc', g.i, 400)",
                    "hospital_level": self.pick(
                        "hl", [("tertiary", 30), ("secondary", 40), ("primary", 25), ("unrated", 5)]
                    ),
                    "visit_type": self.pick("vt", [("outpatient", 70), ("chronic_outpatient", 15), ("inpatient", 15)]),
                    "admission_date": self.day("3 + b_rnd('sd', g.i, 730)"),
                    "serious_illness": f"({self.pct('oop')} >= 98)",
                    "total_cost": f"({self._oop()} * 2.5)::numeric(18,4)",
                    "insurance_paid": f"({self._oop()} * 1.5)::numeric(18,4)",
                    "out_of_pocket": self._oop(),
                    "policy_scope_self_pay": f"({self._oop()} * 0.8)::numeric(18,4)",
                    "settlement_date": self.day("b_rnd('sd', g.i, 730)"),
                    **district,
                },
            ),
            # ~5k disease emergency fund cases; a tenth unidentified (no id number)
            Fill(
                "health.disease_emergency_fund",
                self.people("def", self.nr(0.00167), self.no(0.000464), unique=False),
                {
                    "case_id": "'DEF' || lpad(g.i::text, 8, '0')",
                    **{k: f"(CASE WHEN {known} THEN {v} END)" for k, v in self.person().items()},
                    "identity_status": f"(CASE WHEN {known} THEN 'unable_to_pay' ELSE 'unidentified' END)",
                    "hospital_code": "'H' || lpad(b_rnd('hc', g.i, 400)::text, 4, '0')",
                    "hospital_name": "'Hospital ' || b_rnd('hc', g.i, 400)",
                    "emergency_type": self.pick(
                        "et",
                        [
                            ("trauma", 35),
                            ("cardio_cerebrovascular", 30),
                            ("poisoning", 10),
                            ("respiratory", 10),
                            ("other", 15),
                        ],
                    ),
                    "admission_date": self.day("20 + b_rnd('da', g.i, 700)"),
                    "total_cost": self.money("dtc", 5000, 60000),
                    "fund_paid": self.money("dfp", 2000, 30000),
                    "application_date": self.day("10 + b_rnd('da', g.i, 700)"),
                    "approval_date": self.day("b_rnd('da', g.i, 700)"),
                    "disbursement_status": self.pick("dds", [("paid", 70), ("approved", 20), ("revoked", 10)]),
                    **district,
                },
            ),
        ]
        # medical assistance: the premium subsidy of this and last year for most of the roster (the ratio of the
        # category; 1% wrong), plus outpatient/inpatient assistance (~600k rows)
        ratio = "(CASE WHEN g.category IN ('dibao', 'tekun') THEN 100 ELSE 50 END)"
        fills.append(
            Fill(
                "medical_insurance.medical_assistance",
                "(SELECT i, q, hh, tok, t, b_cat(hh) AS category FROM ("
                "SELECT i, t, q, b_hh(q) AS hh, b_tok('p', q) AS tok"
                f" FROM (SELECT i, t, CASE WHEN t < 3 THEN i ELSE b_rnd('mar', i, {self.R}) END AS q"
                f" FROM generate_series(0::bigint, {self.R - 1}) AS i CROSS JOIN generate_series(1, 3) AS t"
                f" WHERE (t = 1 AND b_rnd('prem', i, 100) < 97) OR (t = 2 AND b_rnd('prem0', i, 100) < 85)"
                f" OR (t = 3 AND b_rnd('ma3', i, 100) < 33)) a OFFSET 0) b OFFSET 0) AS g",
                {
                    "record_id": "'MA' || g.t || lpad(g.i::text, 10, '0')",
                    **self.person(),
                    "low_income_category": "g.category",
                    "medical_assistance_kind": "(CASE WHEN g.t < 3 THEN 'premium_subsidy' ELSE "
                    + self.pick(
                        "mak", [("outpatient", 55), ("inpatient", 35), ("catastrophic", 7), ("re_assistance", 3)]
                    )
                    + " END)",
                    "assistance_year": f"(CASE WHEN g.t = 2 THEN {y - 1} ELSE {y} END)",
                    "subsidy_ratio": f"(CASE WHEN g.t < 3 AND {self.pct('wr')} < 1 THEN 50 ELSE {ratio} END)::numeric",
                    "assistance_base": self.money("mab", 100, 8000),
                    "amount": self.money("mam", 100, 5000),
                    "assistance_date": self.day("(CASE WHEN g.t = 2 THEN 365 ELSE 0 END) + b_rnd('mad', g.i, 180)"),
                    "settlement_channel": self.pick("msc", [("one_stop", 90), ("manual", 10)]),
                    "disbursement_status": self.pick("mds", [("paid", 90), ("approved", 9), ("revoked", 1)]),
                    **district,
                },
            )
        )
        fills += [
            # ~2M employment records; 45k of roster members
            Fill(
                "hr_social_security.employment",
                self.people("emp", self.nr(0.15), self.no(0.2015), unique=False),
                {
                    "record_id": "'E' || lpad(g.i::text, 11, '0')",
                    **self.person(),
                    "employment_form": self.pick(
                        "ef", [("employee", 60), ("flexible", 20), ("self_employed", 15), ("public_welfare_post", 5)]
                    ),
                    "employer_name": "'Employer ' || b_rnd('en', g.i, 50000)",
                    "registration_date": self.day("b_rnd('er', g.i, 3650)"),
                    "start_date": self.day("b_rnd('er', g.i, 3650)"),
                    "status": self.pick("es", [("employed", 70), ("ended", 30)]),
                    **district,
                    **street,
                },
            ),
            # ~20k disaster relief events (3k roster households), a transitional-relief record for most of the
            # severely damaged; 60% within the last 180 days
            Fill(
                "emergency.disaster_relief",
                self.heads("dr", self.nr(0.01), self.no(0.00175), copies="generate_series(1, 2) AS t"),
                {
                    "record_id": "'DR' || g.t || lpad(g.i::text, 9, '0')",
                    "household_id_token": "g.htok",
                    **self.person(),
                    "household_size": "b_hhsize(g.q)",
                    "disaster_type": self.pick(
                        "dty",
                        [("flood", 40), ("storm", 20), ("typhoon", 15), ("landslide", 10), ("fire", 10), ("other", 5)],
                    ),
                    "disaster_date": self.day(
                        f"(CASE WHEN {self.pct('dw')} < 60 THEN b_rnd('ddt', g.i, 170) "
                        "ELSE 190 + b_rnd('ddt', g.i, 500) END)"
                    ),
                    "relief_kind": "(CASE WHEN g.t = 2 THEN 'transitional' ELSE "
                    + self.pick("rk", [("emergency", 70), ("winter_spring", 20), ("house_rebuilding", 10)])
                    + " END)",
                    "house_damage_level": self.pick(
                        "hdl", [("none", 20), ("slight", 35), ("severe", 30), ("collapsed", 15)]
                    ),
                    "amount": self.money("dam", 500, 20000),
                    "in_kind_value": self.money("dik", 0, 2000),
                    "approval_date": self.day("b_rnd('ddt', g.i, 170)"),
                    "relief_start_date": self.day("b_rnd('ddt', g.i, 170)"),
                    "status": self.pick("dst", [("paid", 70), ("approved", 25), ("cancelled", 5)]),
                    **district,
                    **street,
                },
                where=f"g.t = 1 OR ({self.pct('hdl')} >= 55 AND {self.pct('tr')} < 60)",
            ),
            # ~30k return-to-poverty monitoring subjects, 70% on the roster
            Fill(
                "agriculture_rural.return_risk_monitoring",
                self.people("rr", self.nr(0.07), self.no(0.000928)),
                {
                    **self.person(),
                    "household_id_token": "g.htok",
                    "relation_to_head": "b_relation(g.q)",
                    "household_size": "b_hhsize(g.q)",
                    "monitoring_type": self.pick(
                        "mt", [("edge_at_risk", 50), ("unstable_lifted", 35), ("sudden_hardship", 15)]
                    ),
                    "main_risk_cause": self.pick(
                        "mrc",
                        [
                            ("illness", 40),
                            ("disability", 15),
                            ("education", 10),
                            ("accident", 10),
                            ("unemployment", 10),
                            ("other", 15),
                        ],
                    ),
                    "per_capita_net_income": self.money("pci", 4000, 12000),
                    "identification_date": self.day("b_rnd('idd', g.i, 1500)"),
                    "monitoring_status": self.pick("ms", [("monitoring", 80), ("risk_eliminated", 20)]),
                    **district,
                    **street,
                },
            ),
            # ~20k relocated households, 6k of the roster; 30% resettled in another district
            Fill(
                "agriculture_rural.relocated_households",
                self.heads("rel", self.nr(0.02), self.no(0.001443)),
                {
                    "household_id_token": "g.htok",
                    **self.person(),
                    "household_size": "b_hhsize(g.q)",
                    "relocation_category": self.pick("rc", [("registered_poor", 70), ("concurrent", 30)]),
                    "resettlement_mode": self.pick("rm", [("centralized", 75), ("scattered", 25)]),
                    "origin_district_code": "b_dist(g.hh)",
                    "district_code": f"(CASE WHEN {self.pct('moved')} < 30 THEN '4401' || lpad((1 + (b_rnd('dist', "
                    f"g.hh, {DISTRICTS}) + 1 + b_rnd('to', g.i, {DISTRICTS - 1})) % {DISTRICTS})::text, 2, '0') "
                    "ELSE b_dist(g.hh) END)",
                    "street_code": "b_street(g.hh)",
                    "relocation_date": self.day("200 + b_rnd('rld', g.i, 2500)"),
                    "hukou_transferred": f"({self.pct('hk')} >= 40)",
                    "labour_count": "b_rnd('lc', g.i, 3)",
                    "employed_labour_count": "0",
                },
            ),
        ]
        fills += [
            # ~50k public rental records: 70% of roster households in urban housing difficulty, others
            Fill(
                "housing.public_rental_housing",
                "(SELECT row_number() OVER () AS i, tok, htok,"
                " id_number_masked, name_masked, district_code, street_code FROM ("
                f"SELECT {self.hx('id_number_token')} AS tok, {self.hx('household_id_token')} AS htok,"
                " id_number_masked, name_masked, district_code, street_code"
                f" FROM {t[ROSTER]} WHERE relation_to_head = 'head' AND housing_difficulty"
                f" AND b_rnd('prh', hashtext({self.hx('household_id_token')}), 100) < 70"
                f" UNION ALL SELECT tok, htok, b_idmask(q), b_namemask(q), b_dist(hh), b_street(hh)"
                f" FROM {self.heads('prh', 0, self.no(0.004155))}) AS u) AS g",
                {
                    "record_id": "'PR' || lpad(g.i::text, 9, '0')",
                    "household_id_token": "g.htok",
                    **self.person(q="g.i"),
                    "id_number_masked": "g.id_number_masked",
                    "name_masked": "g.name_masked",
                    "support_kind": self.pick("sk", [("physical_allocation", 60), ("rent_subsidy", 40)]),
                    "household_size": "1 + b_rnd('hs', g.i, 4)",
                    "area": self.money("ar", 30, 60),
                    "monthly_rent": self.money("mr", 200, 900),
                    "monthly_subsidy": self.money("ms", 0, 600),
                    "approval_date": self.day("30 + b_rnd('pa', g.i, 2500)"),
                    "start_date": self.day("b_rnd('pa', g.i, 2500)"),
                    "status": self.pick("ps", [("active", 85), ("suspended", 5), ("terminated", 10)]),
                    "district_code": "g.district_code",
                    "street_code": "g.street_code",
                },
            ),
            # ~20k rural house renovation projects, half of rural roster households; a redo in progress for some
            # of the failed or cancelled ones
            Fill(
                "housing.rural_house_renovation",
                f"(SELECT row_number() OVER () AS i, tok, htok, q, hh, category, t FROM ("
                f"SELECT b_tok('p', q) AS tok, b_tok('h', hh) AS htok, q, hh, b_cat(hh) AS category, t FROM ("
                f"SELECT b_head(h) AS q, h AS hh, t FROM generate_series(0::bigint, {max(self.HR - 1, -1)}) AS h"
                f" CROSS JOIN generate_series(1, 2) AS t WHERE NOT b_urban(h) AND b_rnd('rhr', h, 100) < 18"
                f" AND (t = 1 OR (b_rnd('rha', h, 100) >= 90 AND b_rnd('rh2', h, 100) < 40))"
                f" UNION ALL SELECT q, hh, 1 FROM {self.heads('rho', 0, self.no(0.001031))}) AS a) AS b) AS g",
                {
                    "project_id": "'RH' || lpad(g.i::text, 9, '0')",
                    "household_id_token": "g.htok",
                    **self.person(),
                    "household_size": "b_hhsize(g.q)",
                    "category": "g.category",
                    "house_danger_grade": "(CASE WHEN b_rnd('gr', g.hh, 100) < 60 THEN 'C' ELSE 'D' END)",
                    "appraisal_date": self.day("100 + b_rnd('ap', g.hh, 1000)"),
                    "renovation_method": self.pick(
                        "rmm", [("repair", 50), ("rebuild", 35), ("relocation", 10), ("other", 5)]
                    ),
                    "subsidy_amount": self.money("sam", 10000, 40000),
                    # 15% not started, 20% in progress, 10% pending, 45% passed, 5% failed, 5% cancelled
                    "acceptance_status": "(CASE WHEN g.t = 2 THEN 'in_progress' ELSE "
                    + self.pick(
                        "rha",
                        [
                            ("passed", 45),
                            ("in_progress", 20),
                            ("pending", 10),
                            ("not_started", 15),
                            ("failed", 5),
                            ("cancelled", 5),
                        ],
                        of="g.hh",
                    )
                    + " END)",
                    "district_code": "b_dist(g.hh)",
                    "street_code": "b_street(g.hh)",
                },
            ),
        ]
        return fills

    def _oop(self) -> str:
        """Out-of-pocket yuan: mostly small, 12% 1-15k (inpatient), 2% 15-80k (serious illness)."""
        return (
            f"(CASE WHEN {self.pct('oop')} < 86 THEN {self.money('o1', 20, 800)} "
            f"WHEN {self.pct('oop')} < 98 THEN {self.money('o2', 1000, 15000)} "
            f"ELSE {self.money('o3', 15000, 80000)} END)"
        )


# -- loading -------------------------------------------------------------------------------------------------------
def _insert_sql(fill: Fill, table: sa.Table, given: dict[str, str], types: dict[str, tuple[str, bool]]) -> str:
    """INSERT … SELECT of one fill; ``given``: its columns as completed from the contract and the rules."""
    cols = dict(given)
    if "updated_at" in types:
        cols.setdefault("updated_at", "(TIMESTAMP '2000-01-01' + b_rnd('upd', g.i, 86400) * INTERVAL '1 minute')")
    digest = "md5(g.i::text)"  # a department table stores a digest's 32 bytes (migration 0024), the platform's its hex
    if types.get("_row_digest", ("",))[0] == "bytea":
        digest = f"decode({digest} || md5(g.i::text || 'd'), 'hex')"
    cols |= {"_batch_id": f"'{BATCH}'", "_row_digest": digest, "_retired_batch": "NULL"}
    # the encrypted fields of a row are one sealed message (lidm.protect): 33 bytes of head and tag, then the parts
    parts = [cols.pop(k) for k in sorted(cols) if k.endswith("_enc") and k not in types]
    if parts and "_sealed" in types:
        cols["_sealed"] = f"convert_to(concat(rpad('', 33, 'x'), {', '.join(parts)}), 'UTF8')"
    unknown = set(cols) - set(types)
    if unknown:
        raise SystemExit(f"{table.name}: no column {', '.join(sorted(unknown))}")
    missing = [c for c, (_, required) in types.items() if required and c not in cols]
    if missing:
        raise SystemExit(f"{table.name}: required column(s) {', '.join(missing)} have no value")
    names = [c for c in types if c in cols]
    where = f" WHERE {fill.where}" if fill.where else ""
    return (
        f'INSERT INTO "{table.name}" ({", ".join(names)}) SELECT {", ".join(cols[n] for n in names)}'
        f" FROM {fill.source}{where}"
    )


def column_types(conn: sa.Connection, table: str) -> dict[str, tuple[str, bool]]:
    """The table's columns as migrated: name -> (PostgreSQL data type, NOT NULL), in order."""
    rows = conn.execute(
        sa.text(
            "SELECT column_name, data_type, is_nullable = 'NO' FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :t ORDER BY ordinal_position"
        ),
        {"t": table},
    ).all()
    return {name: (kind, required) for name, kind, required in rows}


def _raw(conn: sa.Connection, sql: str) -> Any:
    """Run SQL as written (no parameters, so a % is the modulo operator) in the connection's transaction."""
    return conn.connection.driver_connection.execute(sql)


def _indexes(conn: sa.Connection, table: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(constraint name, definition) of the primary key, and CREATE INDEX of the other indexes."""
    pk = conn.execute(
        sa.text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"
        ),
        {"t": table},
    ).all()
    idx = conn.execute(
        sa.text(
            "SELECT indexdef FROM pg_indexes WHERE tablename = :t AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass))"
        ),
        {"t": table},
    ).scalars()
    return [(r[0], r[1]) for r in pk], list(idx)


SPLIT = 500_000  # rows per INSERT … SELECT of a fill over City.series


def _split(sql: str) -> list[str]:
    """One statement per SPLIT rows of the City.series in it (itself, when it has none)."""
    found = re.search(r"LEAST\(@HI@, (\d+)\)", sql)
    total = int(found.group(1)) if found else 1
    return [sql.replace("@LO@", str(lo)).replace("@HI@", str(lo + SPLIT)) for lo in range(0, max(total, 1), SPLIT)]


def fill_table(engine: sa.Engine, fill: Fill, table: sa.Table, sql: str) -> dict[str, Any]:
    """The fill's INSERT ... SELECT (in parts of SPLIT rows), in one transaction; the table's indexes dropped
    during it and rebuilt after (same names, same definitions): a sorted build instead of millions of random
    inserts into the token btrees."""
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
        pks, idx = _indexes(conn, table.name)
        for name, _ in pks:
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" DROP CONSTRAINT "{name}"')
        for ddl in idx:
            conn.exec_driver_sql(f"DROP INDEX {ddl.split(' ON ')[0].split()[-1]}")
        rows = sum(_raw(conn, part).rowcount for part in _split(sql))
        loaded = time.perf_counter() - start
        for name, definition in pks:
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD CONSTRAINT "{name}" {definition}')
        for ddl in idx:
            conn.exec_driver_sql(ddl)
    seconds = time.perf_counter() - start
    print(f"  {table.name:48} {rows:>11,} rows  {seconds:6.1f} s (indexes {seconds - loaded:5.1f} s)", flush=True)
    return {"feed": fill.feed, "rows": rows, "insert_s": loaded, "seconds": seconds}


def load(
    engine: sa.Engine, city: City, tables: dict[str, sa.Table], catalog: Any, rules: list[Rule]
) -> dict[str, dict[str, Any]]:
    """Fill every table: health_population on a second connection while the others load in order (no rule
    reads it; the others may read the roster and the tables before them). A feed without a profile in City.fills
    gets a generic fill (rule_fills.generic), after the profiled ones; every fill's columns are completed from the
    contract and what the rules ask (rule_fills.complete). Then VACUUM (ANALYZE) what the rules read, and ANALYZE
    the population."""
    with engine.connect() as conn:
        types = {t.name: column_types(conn, t.name) for t in tables.values()}
    city.bytea_tokens = types[tables[ROSTER].name]["id_number_token"][0] == "bytea"
    fills = city.fills({feed: t.name for feed, t in tables.items()})
    profiled = {f.feed for f in fills}
    fills += [rule_fills.generic(city, feed, catalog[feed]) for feed in tables if feed not in profiled]
    read = rule_fills.hints(rules, city.as_of)
    sql = {
        id(f): _insert_sql(
            f,
            tables[f.feed],
            rule_fills.complete(
                city, f, catalog[f.feed], types[tables[f.feed].name], read, all_=f.feed not in profiled
            ),
            types[tables[f.feed].name],
        )
        for f in fills
    }
    for feed in tables:
        if feed not in profiled:
            print(f"  ({catalog[feed].table}: no profile in City.fills, filled from its contract and the rules)")
    population = next(f for f in fills if f.feed == POPULATION)
    out: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        background = pool.submit(fill_table, engine, population, tables[POPULATION], sql[id(population)])
        for fill in fills:
            if fill is not population:
                out[tables[fill.feed].name] = fill_table(engine, fill, tables[fill.feed], sql[id(fill)])
        out[tables[POPULATION].name] = background.result()
    start = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name, info in out.items():
            conn.exec_driver_sql(f'{"ANALYZE" if info["feed"] == POPULATION else "VACUUM (ANALYZE)"} "{name}"')
    print(f"  VACUUM (ANALYZE) {time.perf_counter() - start:6.1f} s", flush=True)
    return out


# -- the anchor ----------------------------------------------------------------------------------------------------
def copy_anchor(engine: sa.Engine, table: str, rows: int, work: Path, repeat: int = 3) -> dict[str, Any]:
    """PostgreSQL's own COPY of the roster: TO STDOUT into a file, FROM that file into an empty copy of the table
    (with its indexes). The median of ``repeat`` rounds."""
    path = work / "roster.copy"
    outs, ins = [], []
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE TABLE bench_roster_copy (LIKE "{table}" INCLUDING ALL)')
        conn.commit()
        cur = conn.connection.driver_connection.cursor()
        for _ in range(repeat):
            start = time.perf_counter()
            with path.open("wb") as fh, cur.copy(f'COPY "{table}" TO STDOUT') as copy:
                for chunk in copy:
                    fh.write(chunk)
            conn.commit()
            outs.append(time.perf_counter() - start)
            conn.exec_driver_sql("TRUNCATE bench_roster_copy")
            conn.commit()
            start = time.perf_counter()
            with path.open("rb") as fh, cur.copy("COPY bench_roster_copy FROM STDIN") as copy:
                while data := fh.read(1 << 20):
                    copy.write(data)
            conn.commit()
            ins.append(time.perf_counter() - start)
        conn.exec_driver_sql("DROP TABLE bench_roster_copy")
        conn.commit()
    out_s, in_s = statistics.median(outs), statistics.median(ins)
    return {
        "rows": rows,
        "bytes": path.stat().st_size,
        "copy_to_s": out_s,
        "copy_from_s": in_s,
        "copy_to_rows_per_s": rows / out_s,
        "copy_from_rows_per_s": rows / in_s,
        # the anchor: rows through one COPY TO plus one COPY FROM of the same rows
        "rows_per_s": rows / (out_s + in_s),
    }


# -- measuring -----------------------------------------------------------------------------------------------------
@dataclass
class Pass:
    label: str
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    monitor: dict[str, Any] = field(default_factory=dict)


def _cancelled(exc: BaseException) -> bool:
    return isinstance(getattr(exc, "orig", None), psycopg.errors.QueryCanceled)


def dry(
    engine: sa.Engine,
    rules: list[Rule],
    catalog: Any,
    as_of: date,
    timeout: float,
    sizes: dict[str, int],
    anchor: float,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rule in rules:
        scanned = sum(sizes[catalog[f].table] for f in rule.feeds)
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SET statement_timeout = {int(timeout * 1000)}")
            tune(conn)  # the session run_monitor evaluates the rules in (lidm.monitor.engine.RULE_SESSION)
            start = time.perf_counter()
            try:
                matched: int | None = len(conn.execute(Compiled(rule, catalog, as_of).tokens()).scalars().all())
            except sa.exc.OperationalError as exc:
                if not _cancelled(exc):
                    raise
                matched = None
            seconds = time.perf_counter() - start
            conn.rollback()
        rate = scanned / seconds
        out[rule.id] = {
            "matched": matched,
            "timed_out": matched is None,
            "seconds": seconds,
            "rows_read": scanned,
            "rows_per_s": None if matched is None else rate,
            "ratio_to_copy": None if matched is None else rate / anchor,
        }
        shown = f"> {timeout:.0f} s (cancelled)" if matched is None else f"{seconds:8.2f} s"
        print(f"  {rule.id:36} {'-' if matched is None else f'{matched:,}':>9} {shown}", flush=True)
    return out


def monitor_runs(
    url: str, rules: list[Rule], catalog: Any, as_of: date, timeout: float, options: str = ""
) -> dict[str, Any]:
    """run_monitor twice: the first raises the warnings (on warning tables never analyzed, as on a new deployment;
    on this server autovacuum is off), the second finds nothing new (the steady state). Per-rule seconds come from a
    timing wrapper around lifecycle._run_rule."""
    options = f"{options} -c statement_timeout={int(timeout * 1000)}".strip()
    engine = sa.create_engine(url, connect_args={"options": options})
    original = lifecycle._run_rule
    per_rule: dict[str, float] = {}

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        compiled = next(a for a in args if isinstance(a, Compiled))
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            per_rule[compiled.rule.id] = time.perf_counter() - start

    lifecycle._run_rule = timed
    phases: dict[str, float] = {}
    started: list[float] = []

    def before(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        started.append(time.perf_counter())

    def after(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        phase = _phase(statement)
        phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - started.pop()

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    out: dict[str, Any] = {"rules": [r.id for r in rules]}
    # The benchmark times SQL, not deadlines: past the installed holiday calendar it counts weekdays (the stopgap
    # LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH), and says so.
    try:
        workdays.check_covered(as_of, "the run's day")
        due_dates(rules, as_of, workdays.OFFICIAL)
        calendar = workdays.OFFICIAL
    except ConfigError:
        calendar = workdays.Calendar(assume_weekdays_through=as_of.year + 1)
        print(f"  (deadlines past the holiday calendar: weekdays assumed through {as_of.year + 1})", flush=True)
    try:
        for label in ("first", "steady"):
            per_rule.clear()
            phases.clear()
            start = time.perf_counter()
            try:
                result = run_monitor(engine, rules, catalog, as_of=as_of, calendar=calendar)
            except sa.exc.OperationalError as exc:
                if not _cancelled(exc):
                    raise
                out[label] = {"timed_out": True, "seconds": time.perf_counter() - start, "rule_s": dict(per_rule)}
                print(f"  run_monitor {label:6} cancelled after {time.perf_counter() - start:.1f} s", flush=True)
                break
            seconds = time.perf_counter() - start
            counts = result.as_dict()["rules"]
            out[label] = {
                "timed_out": False,
                "seconds": seconds,
                "raised": sum(c["raised"] for c in counts.values()),
                "matched": sum(c["matched"] for c in counts.values()),
                "closed": sum(c["closed"] for c in counts.values()),
                "rule_s": dict(per_rule),
                "phase_s": dict(sorted(phases.items(), key=lambda kv: -kv[1])),
                "counts": counts,
            }
            print(
                f"  run_monitor {label:6} {seconds:8.2f} s  matched {out[label]['matched']:,}"
                f" raised {out[label]['raised']:,} closed {out[label]['closed']:,}",
                flush=True,
            )
    finally:
        lifecycle._run_rule = original
        engine.dispose()
    return out


# Where a run's time goes, by the statements it sends (the tables they write or the first words they start with).
_PHASES = (
    ("the rules' matches", ("CREATE TEMPORARY TABLE lidm_run_matches", "CREATE UNIQUE INDEX lidm_run_matches")),
    (
        "the shared sums",
        ("CREATE TEMPORARY TABLE lidm_run_total", "CREATE UNIQUE INDEX lidm_run_total", "ANALYZE lidm_run_total"),
    ),
    ("the warnings", ("INSERT INTO platform_warning",)),
    ("their state rows and events", ("INSERT INTO lidm_warning_state", "INSERT INTO lidm_warning_event")),
    ("ANALYZE of the warning tables", ("ANALYZE lidm_warning_state",)),
)


def _phase(statement: str) -> str:
    for phase, starts in _PHASES:
        if statement.lstrip().startswith(starts):
            return phase
    return "the rest (what is new or gone, closing, overdue, release sync, audit)"


def kept(engine: sa.Engine, tables: dict[str, sa.Table]) -> dict[str, dict[str, Any]]:
    """The tables of a kept database as load() reports them: rows from the statistics (exact after its VACUUM)."""
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(:n)"),
                {"n": [t.name for t in tables.values()]},
            ).all()
        )
    return {t.name: {"feed": feed, "rows": rows[t.name], "seconds": 0.0} for feed, t in tables.items()}


def reset_warnings(engine: sa.Engine, catalog: Any) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(WARNING_TABLES)}, lidm_monitor_run")


# -- indexes and plans ---------------------------------------------------------------------------------------------
def leading_columns(conn: sa.Connection, tables: list[str]) -> dict[str, set[str]]:
    rows = conn.execute(
        sa.text(
            "SELECT t.relname, a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] WHERE t.relname = ANY(:names)"
        ),
        {"names": tables},
    ).all()
    out: dict[str, set[str]] = {t: set() for t in tables}
    for table, column in rows:
        out[table].add(column)
    return out


def joins(rule: Rule, catalog: Any) -> list[dict[str, Any]]:
    """Each clause of a rule: the table it probes per subject row, on which token, and how."""
    out = []
    for kind, clauses in (("match", rule.match), ("match_any", rule.match_any), ("absent", rule.absent)):
        for clause in clauses:
            out.append(
                {
                    "kind": kind,
                    "table": catalog[clause.feed].table,
                    "column": "id_number_token" if clause.on == "person" else "household_id_token",
                    "total": clause.total is not None,
                }
            )
    return out


def missing_indexes(engine: sa.Engine, rules: list[Rule], catalog: Any) -> list[tuple[str, str]]:
    wanted = sorted({(j["table"], j["column"]) for r in rules for j in joins(r, catalog)})
    with engine.connect() as conn:
        have = leading_columns(conn, sorted({t for t, _ in wanted}))
    return [(t, c) for t, c in wanted if c not in have[t]]


def create_indexes(engine: sa.Engine, wanted: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
        for table, column in wanted:
            name = f"bench_ix_{table}_{column}"[:63]
            start = time.perf_counter()
            conn.exec_driver_sql(f'CREATE INDEX "{name}" ON "{table}" ("{column}")')
            seconds = time.perf_counter() - start
            size = conn.execute(sa.text("SELECT pg_relation_size(CAST(:n AS regclass))"), {"n": name}).scalar_one()
            out[f"{table}({column})"] = {"seconds": seconds, "bytes": size}
            print(f"  CREATE INDEX ON {table}({column}) {seconds:6.1f} s {size / 2**20:7.1f} MiB", flush=True)
    return out  # no ANALYZE: the new indexes are on plain columns, and the warning tables keep no statistics


def plan(engine: sa.Engine, rule: Rule, catalog: Any, as_of: date) -> dict[str, Any]:
    """EXPLAIN (no ANALYZE) of the rule's dry evaluation: an indented tree of node types, and how each table is
    reached: "per row" (a plain SubPlan or the inner side of a nested loop: once per subject row), "hashed
    subplan", or "join" (read once into a hash/merge join)."""
    stmt = Compiled(rule, catalog, as_of).tokens()
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        (doc,) = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()
    lines: list[str] = []
    access: list[dict[str, Any]] = []
    # PostgreSQL names a hashed subplan "SubPlan N" on the node and "hashed SubPlan N" where it is used
    hashed = set(re.findall(r"hashed (SubPlan \d+)", json.dumps(doc)))

    def walk(node: dict[str, Any], depth: int, via: str) -> None:
        text = node["Node Type"]
        if node.get("Join Type") and ("Join" in text or text == "Nested Loop"):
            text += f" ({node.get('Join Type')})"
        if node.get("Relation Name"):
            text += f" on {node['Relation Name']}"
        if node.get("Index Name"):
            text += f" using {node['Index Name']}"
        name = node.get("Subplan Name")
        if name:
            via = "hashed subplan" if name in hashed or name.startswith("hashed") else "per row"
            text = f"[{'hashed ' if via == 'hashed subplan' and name in hashed else ''}{name}] {text}"
        if node.get("Relation Name"):
            access.append({"table": node["Relation Name"], "node": node["Node Type"], "via": via})
        lines.append(f"{'  ' * depth}{text}  (rows~{node.get('Plan Rows')}, cost {node.get('Total Cost'):,.0f})")
        children = node.get("Plans", ())
        for child in children:
            inner = node["Node Type"] == "Nested Loop" and child.get("Parent Relationship") == "Inner"
            walk(child, depth + 1, "per row" if inner else via)

    walk(doc["Plan"], 0, "join")
    return {"lines": lines, "access": access, "cost": doc["Plan"]["Total Cost"]}


def reached(plan_: dict[str, Any], table: str) -> str:
    ways = sorted({f"{a['via']}: {a['node']}" for a in plan_["access"] if a["table"] == table})
    return "; ".join(ways) or "not in the plan"


# -- the report ----------------------------------------------------------------------------------------------------
def table(p: Pass, anchor: float) -> None:
    print(f"\nper rule ({p.label}):")
    heads = ("matched", 8), ("dry s", 7), ("rows/s", 11), ("ratio", 7), ("run1 s", 7), ("run2 s", 7)
    print(f"  {'rule':36} {'reads':>11} " + " ".join(f"{h:>{w}}" for h, w in heads))
    for rule_id, r in p.rules.items():
        runs = [p.monitor.get(k, {}).get("rule_s", {}).get(rule_id) for k in ("first", "steady")]
        run1, run2 = (f"{x:7.2f}" if x is not None else f"{'-':>7}" for x in runs)
        if r["timed_out"]:
            figures = f"{'-':>8} {'>' + format(r['seconds'], '.0f'):>7} {'-':>11} {'-':>7}"
        else:
            figures = f"{r['matched']:>8,} {r['seconds']:7.2f} {r['rows_per_s']:>11,.0f} {r['ratio_to_copy']:7.2f}"
        print(f"  {rule_id:36} {r['rows_read']:>11,} {figures} {run1} {run2}")
    dry_s = sum(r["seconds"] for r in p.rules.values())
    print(f"  the rules' dry queries together ({len(p.rules)} rules): {dry_s:8.2f} s")
    for label in ("first", "steady"):
        m = p.monitor.get(label)
        if m:
            state = "cancelled" if m["timed_out"] else f"matched {m['matched']:,}, raised {m['raised']:,}"
            ratio = f"; {m['seconds'] / dry_s:.2f}x the dry queries" if dry_s else ""
            print(f"  run_monitor {label} run: {m['seconds']:8.2f} s  {state}{ratio}")
            if m.get("phase_s"):
                spent = sum(m["phase_s"].values())
                parts = "; ".join(f"{k} {v:.2f} s" for k, v in m["phase_s"].items())
                print(f"    in SQL {spent:.2f} s: {parts}; outside SQL {m['seconds'] - spent:.2f} s")
    print(
        f"  (rows/s: rows of the tables the rule reads / dry s; ratio: that / the COPY anchor's {anchor:,.0f} rows/s;"
        " run1/run2 s: the rule's share of the first run_monitor and of the steady-state one, which finds nothing new;"
        f" the queries run with {', '.join(f'{k}={v}' for k, v in RULE_SESSION.items())}, as run_monitor runs them)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", type=int, default=None, help=f"people (default {CITY_POPULATION:,})")
    ap.add_argument("--roster", type=int, default=None, help=f"roster members (default {CITY_ROSTER:,})")
    ap.add_argument("--scale", type=float, default=1.0, help="both of the city's sizes times this (0.01: a quick run)")
    ap.add_argument(
        "--central-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server URL; a throwaway database is made on it and dropped at the end",
    )
    ap.add_argument("--as-of", type=date.fromisoformat, default=date.today(), help="the run's day (default today)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a statement is cancelled")
    ap.add_argument(
        "--with-token-indexes",
        action="store_true",
        help="then index the join tokens the rules need and measure again (before/after)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the scratch database (its name is printed)")
    ap.add_argument("--database", default=None, help="measure on a database kept by --keep instead of loading one")
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = ap.parse_args()
    population = args.population or round(CITY_POPULATION * args.scale)
    roster = args.roster or round(CITY_ROSTER * args.scale)
    if roster < 20 or population < 2 * roster:
        raise SystemExit("need at least 20 roster members and a population of at least twice the roster")

    catalog = load_catalog()
    rules = load_rules(catalog=catalog)
    md = sa.MetaData()
    feeds = [POPULATION, ROSTER] + [f for r in rules for f in r.feeds]
    tables = {f: dataset_table(catalog[f], md) for f in dict.fromkeys(feeds)}

    scratch = args.database or f"lidm_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(args.central_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not args.database:
            conn.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
        settings = dict(
            conn.execute(
                sa.text("SELECT name, current_setting(name) FROM unnest(CAST(:n AS text[])) AS name"),
                {"n": list(SERVER_SETTINGS)},
            ).all()
        )
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
    url = sa.make_url(args.central_url).set(database=scratch).render_as_string(hide_password=False)
    options = ""
    engine = sa.create_engine(url)
    results: dict[str, Any] = {
        "rule_session": RULE_SESSION,
        "population": population,
        "roster": roster,
        "as_of": args.as_of.isoformat(),
        "timeout_s": args.timeout,
        "server": {"version": version, **settings},
        "rules": len(rules),
    }
    print(
        f"city: {population:,} people, {roster:,} roster members; {len(rules)} rules; as of {args.as_of}; "
        f"database {scratch} (PostgreSQL {version}; {', '.join(f'{k}={v}' for k, v in settings.items())})"
        + f"; the rules' queries with {', '.join(f'{k}={v}' for k, v in RULE_SESSION.items())}"
    )
    try:
        started = time.perf_counter()
        db.migrate(engine)
        if args.database:  # kept from an earlier run: migrated to the head, its warnings emptied, not loaded again
            loaded = kept(engine, tables)
            reset_warnings(engine, catalog)
        else:
            with engine.begin() as conn:
                for ddl in _functions(population, roster):
                    _raw(conn, ddl)
            print("loading (INSERT ... SELECT over generate_series):", flush=True)
            loaded = load(engine, City(population, roster, args.as_of), tables, catalog, rules)
        with engine.connect() as conn:
            db_bytes = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        results["load"] = {"tables": loaded, "seconds": time.perf_counter() - started, "database_bytes": db_bytes}
        print(f"  loaded in {results['load']['seconds']:.0f} s; database {db_bytes / 2**30:.2f} GiB", flush=True)
        sizes = {name: v["rows"] for name, v in loaded.items()}

        with tempfile.TemporaryDirectory() as tmp:
            anchor = copy_anchor(engine, tables[ROSTER].name, sizes[tables[ROSTER].name], Path(tmp))
        results["copy"] = anchor
        print(
            f"COPY anchor (roster, {anchor['rows']:,} rows, {anchor['bytes'] / 2**20:.0f} MiB): "
            f"TO STDOUT {anchor['copy_to_rows_per_s']:,.0f} rows/s, FROM STDIN {anchor['copy_from_rows_per_s']:,.0f} "
            f"rows/s; round trip {anchor['rows_per_s']:,.0f} rows/s",
            flush=True,
        )

        missing = missing_indexes(engine, rules, catalog)
        results["unindexed_join_tokens"] = [f"{t}({c})" for t, c in missing]
        passes: list[Pass] = []
        labels = ["schema indexes"] + (["+ token indexes"] if args.with_token_indexes else [])
        plans: dict[str, dict[str, dict[str, Any]]] = {}
        for label in labels:
            if label == "+ token indexes":
                print("creating the missing join-token indexes:", flush=True)
                results["token_indexes"] = create_indexes(engine, missing)
                reset_warnings(engine, catalog)
            p = Pass(label)
            print(f"dry evaluation ({label}):", flush=True)
            p.rules = dry(engine, rules, catalog, args.as_of, args.timeout, sizes, anchor["rows_per_s"])
            runnable = [r for r in rules if not p.rules[r.id]["timed_out"]]
            if len(runnable) < len(rules):
                skipped = sorted(set(p.rules) - {r.id for r in runnable})
                print(f"  run_monitor without the rules that timed out: {', '.join(skipped)}")
            p.monitor = monitor_runs(url, runnable, catalog, args.as_of, args.timeout, options)
            passes.append(p)
            plans[label] = {r.id: plan(engine, r, catalog, args.as_of) for r in rules}

        for p in passes:
            table(p, anchor["rows_per_s"])
        for p in passes:
            slowest = max(p.rules, key=lambda k: p.rules[k]["seconds"])
            print(f"\nEXPLAIN (no ANALYZE) of the slowest rule ({p.label}): {slowest}")
            print("\n".join(f"  {line}" for line in plans[p.label][slowest]["lines"]))
        print("\njoin tokens without an index, and how each plan reaches the table:")
        needed: set[str] = set()
        for rule in rules:
            for j in joins(rule, catalog):
                if (j["table"], j["column"]) not in missing:
                    continue
                ix = f"{j['table']}({j['column']})"
                ways = [reached(plans[label][rule.id], j["table"]) for label in plans]
                if "per row: Seq Scan" in ways[0]:
                    needed.add(ix)
                print(f"  {rule.id:36} {j['kind']:9} {ix}: {' -> '.join(ways)}")
        results["recommended_indexes"] = sorted(needed)
        if needed:
            print("  scanned once per subject row without an index (needed): " + ", ".join(sorted(needed)))
        if len(passes) == 2:
            print("\nwith the token indexes (dry seconds before -> after):")
            for rule_id, before in passes[0].rules.items():
                after = passes[1].rules[rule_id]
                mark = ">" if before["timed_out"] else ""
                print(f"  {rule_id:36} {mark}{before['seconds']:8.2f} -> {after['seconds']:8.2f} s")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS of this process: {rss:,.0f} MiB; total {time.perf_counter() - started:,.0f} s")
        results |= {
            "passes": [{"label": p.label, "dry": p.rules, "run_monitor": p.monitor} for p in passes],
            "explain": plans,
            "peak_rss_mib": rss,
            "seconds": time.perf_counter() - started,
        }
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
            print(f"results written to {args.json}")
    finally:
        engine.dispose()
        if args.keep or args.database:
            print(f"kept database {scratch}")
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{scratch}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
