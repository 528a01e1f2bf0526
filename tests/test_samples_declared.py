"""Sample sources declared as data: a department adds a dataset with files alone (its contract, its adapter and
``<dataset>.sample.yaml`` beside the adapter) and `lidm sample` writes rows its adapter's verification accepts, every
planted fault quarantined for its reason. The department here is tests/veterans_department (veterans affairs)."""

from __future__ import annotations

import json
import os
import random
import re
import runpy
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from _veterans import DEPARTMENT, FEED, add_department
from lidm_samples.catalog import hand_written_sources, sample_sources, write_sources
from lidm_samples.declared import FAULT_REASONS, load_declaration
from lidm_samples.generate import declared_source
from lidm_samples.pattern import matching
from lidm_samples.sources import Servers
from lidm_samples.world import build_world

from lidm.contracts import load_catalog, load_contract
from lidm.contracts.load import default_contracts_dir
from lidm.errors import ConfigError
from lidm.registry import adapters, refresh
from lidm.testkit import PASS, verify

DECLARATION = DEPARTMENT / "veterans" / "entitled_persons.sample.yaml"
LIDM = str(Path(sys.executable).parent / "lidm")
SIZE, SEED, BAD = 1500, 20261127, 14  # 14 faulty rows: two of each of the seven kinds declared


@pytest.fixture(scope="module")
def contracts(tmp_path_factory):
    """The gateway's contracts and the new department's one, where LIDM_CONTRACTS_DIR points, with the migration of
    its table beside them (migrations/, written by `lidm db revision`, as the department does)."""
    target = tmp_path_factory.mktemp("catalogue") / "contracts"
    shutil.copytree(default_contracts_dir(), target)
    add_department(target)
    made = subprocess.run(
        [LIDM, "db", "revision", "-m", FEED],
        capture_output=True,
        text=True,
        env={**os.environ, "LIDM_CONTRACTS_DIR": str(target)},
        cwd=target.parent,
    )
    assert made.returncode == 0 and (target.parent / "migrations").is_dir(), made.stdout + made.stderr
    return target


@pytest.fixture(scope="module")
def world():
    return build_world(SIZE, SEED)


@pytest.fixture
def adapters_dir(tmp_path, monkeypatch, contracts):
    """A folder of the deployment's adapters (the lidm_adapters package), holding the new department's files."""
    import lidm_adapters

    into = tmp_path / "adapters"
    shutil.copytree(DEPARTMENT / "veterans", into / "veterans")
    monkeypatch.setattr(lidm_adapters, "__path__", [*lidm_adapters.__path__, str(into)])
    monkeypatch.setenv("LIDM_CONTRACTS_DIR", str(contracts))
    _forget_the_department()
    yield into
    _forget_the_department()


def _forget_the_department() -> None:
    """Each test's adapter module is read from its own folder, not from a module an earlier test imported."""
    for name in [m for m in sys.modules if m == "lidm_adapters.veterans" or m.startswith("lidm_adapters.veterans.")]:
        del sys.modules[name]
    refresh()


def _expected_reasons(bad_kinds: dict[str, int]) -> Counter:
    """The quarantine's reasons the planted faults must give: each once, a duplicated key twice."""
    expected: Counter = Counter()
    for kind, n in bad_kinds.items():
        expected[FAULT_REASONS[kind]] += 2 * n if kind == "duplicate_key" else n
    return expected


def _conforms_with_the_planted_faults(report, written) -> None:
    statuses = {c.name: c.status for c in report.checks}
    assert report.passed, report.markdown()
    assert statuses["protection"] == PASS and statuses["idempotent"] == PASS, report.markdown()
    loads = next(c for c in report.checks if c.name == "loads").figures
    assert loads["extracted"] == written.rows
    assert loads["quarantined"] == written.expected_quarantine, report.markdown()
    reasons = next(c for c in report.checks if c.name == "quarantine").figures["rows"]
    assert Counter({r: len(rows) for r, rows in reasons.items()}) == _expected_reasons(written.bad_kinds)


# --------------------------------------------------------------------------- files alone


def test_a_dataset_added_with_files_alone_is_complete(adapters_dir, contracts):
    """The completeness rule (every contract has an adapter and a sample source) holds without a line of Python in
    lidm_samples."""
    departmental = {c.id for c in load_catalog(contracts) if c.department != "platform"}
    assert FEED in departmental and FEED not in hand_written_sources()
    assert set(adapters()) == departmental == set(sample_sources())
    assert sample_sources()[FEED].kind == "sql/sqlite"


def test_a_declared_source_conforms_with_its_faults_quarantined_for_their_reasons(adapters_dir, world, tmp_path):
    report = write_sources(world, Servers(tmp_path / "sources"), bad=BAD, datasets=[FEED])
    assert report.connections == {"veterans_db": f"sqlite:///{(tmp_path / 'sources' / 'veterans_db.db').resolve()}"}
    written = report.by_dataset()[FEED]
    declared = yaml.safe_load(DECLARATION.read_text("utf-8"))["faults"]
    assert written.bad_kinds == dict.fromkeys(declared, 2)
    _conforms_with_the_planted_faults(verify(FEED, connections=report.connections), written)


def test_a_declared_drop_conforms_too(adapters_dir, world, tmp_path):
    """The same declaration for a GBK CSV drop whose dates are ISO text (the adapter maps them by name), with the
    division codes drawn from the contract and every other kind of fault planted."""
    module = adapters_dir / "veterans" / "entitled_persons.py"
    text = module.read_text("utf-8").replace(
        'SqlSource(connection="veterans_db", table="t_yfdx")',
        'DropSource(connection="veterans_drop", pattern="yfdx_*.csv", encoding="gbk")',
    )
    text = text.replace('date("rdrq", "%Y%m%d")', '"rdrq"')
    module.write_text(text.replace("SqlSource", "DropSource", 1), "utf-8")
    declaration = yaml.safe_load(DECLARATION.read_text("utf-8"))
    del declaration["source"]
    declaration["columns"].update(qxdm="contract", jddm="contract")
    declaration["faults"].update(bad_phone="lxdh", above_maximum="fxje_fen", bad_pattern="jddm")
    (adapters_dir / "veterans" / "entitled_persons.sample.yaml").write_text(
        yaml.safe_dump(declaration, sort_keys=False), "utf-8"
    )
    refresh()
    source = sample_sources()[FEED]
    assert (source.file, source.encoding, source.kind) == ("yfdx_20261127.csv", "gb18030", "csv/gb18030")
    report = write_sources(world, Servers(tmp_path / "sources"), bad=BAD, datasets=[FEED])
    drop = tmp_path / "sources" / "veterans_drop" / "yfdx_20261127.csv"
    lines = drop.read_bytes().decode("gb18030").splitlines()
    assert lines[0] == "sfzh,xm,lxdh,yflb,cjdj,fxje_fen,rdrq,zt,qxdm,jddm,gxsj,bz"
    written = report.by_dataset()[FEED]
    assert len(written.bad_kinds) == 10
    assert sum(",2026-02-30," in line for line in lines) == written.bad_kinds["bad_date"]  # as ISO text
    _conforms_with_the_planted_faults(verify(FEED, connections=report.connections), written)


def test_declared_rows_are_deterministic_and_about_the_worlds_people(adapters_dir, world):
    source = sample_sources()[FEED]
    table = source.build(world, 0)
    assert table.rows == source.build(build_world(SIZE, SEED), 0).rows
    assert table.rows != source.build(build_world(SIZE, SEED + 1), 0).rows
    on_roster = {m.person.id_number for m in world.roster if m.status == "active"}
    assert all(r["sfzh"] in world.by_id for r in table.rows)
    assert sum(r["sfzh"] in on_roster for r in table.rows) >= 5  # they join the roster, so rules can fire
    for row in table.rows:
        person = world.by_id[row["sfzh"]]
        assert (row["xm"], row["qxdm"], row["jddm"]) == (person.name, person.district_code, person.street_code)
        assert row["yflb"] in {"11", "12", "21", "99"} and row["zt"] in {"1", "2", "3"}  # the adapter's own codes
        assert isinstance(row["fxje_fen"], int) and 30000 <= row["fxje_fen"] <= 300000  # 300-3000 yuan, in fen
        assert re.fullmatch(r"(19[89]\d|20[0-2]\d)[01]\d[0-3]\d", row["rdrq"])  # YYYYMMDD, from 2000 on
        assert row["bz"] in (None, "转入", "复核")
    assert Counter(r["yflb"] for r in table.rows).most_common(1)[0][0] == "11"  # weighted: veterans most


def test_the_hand_written_source_wins_over_a_declaration(adapters_dir):
    """A declaration for a dataset lidm_samples writes by hand is not read (here it would not even load)."""
    (adapters_dir / "civil_affairs").mkdir()
    (adapters_dir / "civil_affairs" / "low_income_roster.sample.yaml").write_text("not: [a, declaration", "utf-8")
    roster = "civil_affairs.low_income_roster"
    assert sample_sources()[roster] is hand_written_sources()[roster]


# --------------------------------------------------------------------------- what is refused, and where


def _edit(declaration: dict, change: str) -> None:
    columns, faults = declaration["columns"], declaration["faults"]
    if change == "missing column":
        del columns["gxsj"]
    elif change == "unmapped column":
        columns["extra"] = {"values": [1]}
    elif change == "fault the field cannot have":
        faults["bad_check_char"] = "xm"
    elif change == "fault on no column":
        faults["bad_pattern"] = "nope"
    elif change == "code not in the contract":
        columns["yflb"] = {"codes": ["general"]}
    elif change == "ignored column from the contract":
        columns["bz"] = "contract"
    elif change == "free text":
        columns["xm"] = "contract"
    elif change == "required left empty":
        columns["xm"] = {"from": "person.name", "empty": 0.2}
    elif change == "file for a table":
        declaration["source"] = {"file": "yfdx.csv"}
    elif change == "unknown group":
        declaration["people"] = [{"from": "veterans"}]
    elif change == "unknown attribute":
        columns["xm"] = "person.nickname"
    elif change == "bad date in a date column":
        columns["rdrq"] = "contract"
        faults["bad_date"] = "gxsj"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing column", "the adapter reads gxsj; declare how each is made"),
        ("unmapped column", "columns: extra neither mapped nor ignored by adapter veterans.entitled_persons"),
        ("fault the field cannot have", "faults.bad_check_char: column xm: field name has nothing this fault would"),
        ("fault on no column", "faults: bad_pattern names 'nope', which is not one of the columns"),
        ("code not in the contract", "columns.yflb (category): codes general are not the contract's"),
        ("ignored column from the contract", "columns.bz: ignored by the adapter"),
        ("free text", "columns.xm (name): free text"),
        ("required left empty", "columns.xm: fills required field name, so it cannot be left empty"),
        ("file for a table", "source: the adapter reads a table; file and encoding are for drops"),
        ("unknown group", "people.0.from: veterans is none of everyone, living, roster nor a cohort"),
        ("unknown attribute", "columns.xm: a person's attributes are id_number, name"),
        ("bad date in a date column", "faults.bad_date: column gxsj: a date column of a table cannot hold 30 Feb"),
    ],
)
def test_a_declaration_that_does_not_fit_is_refused_naming_file_and_column(tmp_path, change, message):
    adapter = runpy.run_path(str(DEPARTMENT / "veterans" / "entitled_persons.py"))["adapter"]
    contract = load_contract(DEPARTMENT / "contracts" / "veterans" / "entitled_persons.yaml")
    declaration = yaml.safe_load(DECLARATION.read_text("utf-8"))
    _edit(declaration, change)
    path = tmp_path / "entitled_persons.sample.yaml"
    path.write_text(yaml.safe_dump(declaration, allow_unicode=True, sort_keys=False), "utf-8")
    with pytest.raises(ConfigError) as refused:
        declared_source(load_declaration(path, FEED), adapter, contract)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)


def test_every_reference_conversion_runs_backwards():
    """What a declared source writes through ``Convert.encode`` reads back as the contract's value: every code of
    every coded field of every reference adapter, dates in the adapter's format, and amounts in fen."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa

    from lidm import date, fen_to_yuan

    dated, in_fen = type(date("c")), type(fen_to_yuan("c"))  # the kinds of conversion, by their public makers
    catalog, checked = load_catalog(), Counter()
    for adapter in adapters().values():
        contract = catalog[adapter.contract]
        for name, conv in adapter.converters().items():
            f = contract.field(name)
            bound = conv.bind(f)
            if f.enum:
                for code in f.enum:
                    assert bound.apply(pa.array([bound.encode(code)])).to_pylist() == [code], (adapter.name, name)
                checked["codes"] += 1
            elif isinstance(conv, dated):
                back = bound.apply(pa.array([bound.encode(dt.date(2026, 1, 5))]))
                assert str(back.to_pylist()[0])[:10] == "2026-01-05", (adapter.name, name)
                checked["dates"] += 1
            elif isinstance(conv, in_fen):
                assert bound.apply(pa.array([bound.encode(Decimal("1234.05"))])).to_pylist() == ["1234.05"]
                checked["fen"] += 1
    assert checked["codes"] > 50 and checked["dates"] > 10 and checked["fen"] >= 5


def test_strings_are_drawn_for_the_contracts_patterns():
    rng = random.Random(3)
    patterns = {f.pattern for c in load_catalog() for f in c.fields if f.pattern}
    assert len(patterns) >= 5
    for pattern in patterns:
        assert all(re.search(pattern, matching(pattern, rng)) for _ in range(20)), pattern
    with pytest.raises(ConfigError, match=r"pattern '\^\(\?=a\)': a group of kind"):
        matching("^(?=a)", rng)


# --------------------------------------------------------------------------- the command line, a department package


def test_lidm_sample_writes_an_installed_department_packages_dataset(tmp_path, contracts):
    """The department's own package, installed (its adapter registered in the lidm.adapters entry-point group), with
    its declaration beside the adapter module: `lidm sample` writes the source, `lidm adapter verify` accepts it."""
    site = tmp_path / "site"
    shutil.copytree(DEPARTMENT / "veterans", site / "veterans")
    info = site / "veterans_gateway-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: veterans-gateway\nVersion: 1.0\n", "utf-8")
    (info / "entry_points.txt").write_text(f"[lidm.adapters]\n{FEED} = veterans.entitled_persons:adapter\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": str(site), "LIDM_CONTRACTS_DIR": str(contracts), "COLUMNS": "200"}
    out = tmp_path / "sources"
    made = subprocess.run(
        [LIDM, "sample", "--size", str(SIZE), "--bad", str(BAD), "--dataset", FEED, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert FEED in made.stdout
    assert json.loads((out / "connections.json").read_text("utf-8"))["veterans_db"].startswith("sqlite:///")
    checked = subprocess.run(
        [LIDM, "adapter", "verify", FEED, "--connections", str(out / "connections.json"), "--report", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "CONFORMS" in checked.stdout
    report = json.loads((tmp_path / f"{FEED}.json").read_text("utf-8"))
    quarantine = next(c for c in report["checks"] if c["name"] == "quarantine")
    declared = yaml.safe_load(DECLARATION.read_text("utf-8"))["faults"]
    assert set(quarantine["figures"]["rows"]) == {FAULT_REASONS[k] for k in declared}
