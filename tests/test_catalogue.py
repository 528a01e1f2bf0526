"""The catalogue as a whole: lint, grants per consumer, the published-version gate, and the exports."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
import yaml

from lidm.contracts import load_catalog
from lidm.contracts.export import html
from lidm.contracts.export import jsonschema as js_export
from lidm.contracts.lint import lint
from lidm.contracts.load import default_contracts_dir
from lidm.contracts.lock import LOCK, check_against_lock, write_lock
from lidm.errors import ContractError


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
def contracts_copy(tmp_path) -> Path:
    target = tmp_path / "contracts"
    shutil.copytree(default_contracts_dir(), target)
    return target


def test_the_catalogue_lints_clean(catalog):
    errors = [str(f) for f in lint(catalog, "4301") if f.severity == "error"]
    assert errors == []


def test_the_published_lock_matches_every_version(catalog):
    """The breaking-change gate CI runs: a contract changed incompatibly without a major bump fails here."""
    assert (default_contracts_dir() / LOCK).exists(), "run `lidm contracts publish` once"
    problems = [f"{d.new.id}: {reason}" for d, reason in check_against_lock(catalog, default_contracts_dir())]
    assert problems == []


def test_gate_fails_a_breaking_change_without_major_bump(contracts_copy):
    write_lock(load_catalog(contracts_copy), contracts_copy)
    path = contracts_copy / "health" / "population.yaml"
    doc = yaml.safe_load(path.read_text("utf-8"))
    doc["schema"][0]["properties"] = [p for p in doc["schema"][0]["properties"] if p["name"] != "address"]
    grants = next(p for p in doc["customProperties"] if p["property"] == "lidmGrants")["value"]
    for g in grants:
        g["fields"].pop("address", None)
    major = int(doc["version"].split(".")[0])
    doc["version"] = f"{major}.1.0"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    (problem,) = check_against_lock(load_catalog(contracts_copy), contracts_copy)
    assert "major version bump" in problem[1] and any(c.kind == "field_removed" for c in problem[0].changes)
    doc["version"] = f"{major + 1}.0.0"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    assert check_against_lock(load_catalog(contracts_copy), contracts_copy) == []


def test_unknown_consumer_in_a_grant_is_refused_with_line(contracts_copy):
    path = contracts_copy / "health" / "population.yaml"
    path.write_text(path.read_text("utf-8").replace("- consumer: platform", "- consumer: tax_bureau", 1), "utf-8")
    with pytest.raises(ContractError, match=r"population\.yaml:\d+: grant names unknown consumer tax_bureau"):
        load_catalog(contracts_copy)


def test_grant_to_a_field_the_contract_lacks_is_refused(contracts_copy):
    path = contracts_copy / "health" / "population.yaml"
    path.write_text(path.read_text("utf-8").replace("fields: {id_number: token,", "fields: {idno: token,", 1), "utf-8")
    with pytest.raises(ContractError, match="names field idno"):
        load_catalog(contracts_copy)


def test_lint_finds_impossible_levels_and_clear_identifiers_without_purpose(contracts_copy):
    path = contracts_copy / "health" / "population.yaml"
    text = path.read_text("utf-8")
    text = text.replace(
        "purpose: 低收入人口认定核查与入户联系 / verifying eligibility and contacting applicants", "purpose: ''"
    )
    text = text.replace(
        "phone: masked, district_code: clear, street_code: clear, address: clear",
        "phone: masked, district_code: clear, street_code: clear, address: masked",
    )
    path.write_text(text, "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301") if f.severity == "error"]
    assert any("field address: grant to civil_affairs at masked needs mask" in m for m in messages)
    assert any(
        "field id_number: direct identifier in clear to civil_affairs without a declared purpose" in m for m in messages
    )


def test_lint_finds_a_code_meaning_two_things(contracts_copy):
    path = contracts_copy / "civil_affairs" / "low_income_roster.yaml"
    path.write_text(path.read_text("utf-8").replace("{value: tekun, label: 特困人员}", "{value: tekun, label: 五保户}"))
    other = contracts_copy / "health" / "population.yaml"
    doc = yaml.safe_load(other.read_text("utf-8"))
    doc["schema"][0]["properties"].append(
        {
            "name": "category",
            "logicalType": "string",
            "classification": "sensitive",
            "enum": [{"value": "tekun", "label": "特困人员"}],
            "customProperties": [
                {"property": "lidmProtection", "value": "clear"},
                {"property": "lidmCodeList", "value": "low_income_category"},
            ],
        }
    )
    other.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301")]
    assert any("code tekun of list low_income_category" in m for m in messages)


def test_lint_finds_a_district_outside_the_city(contracts_copy):
    path = contracts_copy / "consumers.yaml"
    text = path.read_text("utf-8").replace("  districts:\n", '  districts:\n    "110101": 东城区\n', 1)
    path.write_text(text, "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301")]
    assert any("district 110101 is not a division of the city" in m for m in messages)


def test_grants_for_a_county_bureau_come_through_its_group(catalog):
    grants = catalog.grants_for("civil_affairs.furong")
    assert grants and all(g.rows.value == "own_districts" for _, g in grants)
    with pytest.raises(ContractError, match="no consumer nobody"):
        catalog.grants_for("nobody")


def test_json_schema_export_agrees_with_the_gateway(catalog, tmp_path):
    paths = js_export.write(catalog, tmp_path, "4301")
    assert len(paths) == len(catalog)
    for path in paths:
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))
    schema = json.loads((tmp_path / "civil_affairs.low_income_roster.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    good = {
        "id_number": "430102199003071234",
        "name": "王小明",
        "household_id": "MZ4301020000001",
        "relation_to_head": "head",
        "category": "dibao",
        "categories": "dibao,return_risk",
        "district_code": "430102",
        "street_code": "430102001",
        "approval_date": "2024-01-05",
        "termination_date": None,
        "monthly_amount": 650.0,
        "status": "active",
        "phone": "13812345678",
        "updated_at": "2026-11-27T08:00:00+08:00",
    }
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert list(validator.iter_errors(good)) == []
    for field, value in (
        ("category", "低收入"),
        ("categories", "dibao,低收入"),
        ("district_code", "110101"),
        ("monthly_amount", -5),
        ("id_number", "43010219900307123"),
        ("phone", "12345"),
    ):
        assert list(validator.iter_errors(good | {field: value})), field
    assert list(validator.iter_errors(good | {"extra": 1}))


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.ids.append(dict(attrs).get("id", ""))


def test_html_catalogue_has_every_dataset_with_fields_and_grants(catalog, tmp_path):
    (path,) = html.write(catalog, tmp_path)
    text = path.read_text("utf-8")
    parser = _Sections()
    parser.feed(text)
    assert sorted(parser.ids) == sorted(c.id for c in catalog)
    assert "direct_identifier" in text and "own_districts" in text and "低收入人口名单" in text


def test_warnings_reach_each_department_only_for_its_own_rows(catalog):
    warning = catalog["platform.warning"]
    assert warning.department_field == "target_department"
    scoped = {g.consumer: g.rows.value for g in warning.grants}
    assert scoped["justice"] == "own_department" and scoped["platform"] == "all"


def test_lint_needs_a_department_field_for_department_scoped_grants(contracts_copy):
    path = contracts_copy / "platform" / "warning.yaml"
    text = path.read_text("utf-8").replace("  - {property: lidmDepartmentField, value: target_department}\n", "")
    path.write_text(text, "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301") if f.severity == "error"]
    assert any("limited to own_department but lidmDepartmentField is unset" in m for m in messages)


def _population_grants(contracts_copy: Path) -> tuple[Path, dict, list[dict]]:
    path = contracts_copy / "health" / "population.yaml"
    doc = yaml.safe_load(path.read_text("utf-8"))
    return path, doc, next(p for p in doc["customProperties"] if p["property"] == "lidmGrants")["value"]


def test_only_a_token_can_be_linkable_and_only_for_a_purpose(contracts_copy):
    path, doc, grants = _population_grants(contracts_copy)
    county = next(g for g in grants if g["consumer"] == "county_civil_affairs")
    county["linkable"] = ["district_code"]  # granted clear: nothing to link by pseudonym
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    with pytest.raises(
        ContractError, match=r"population\.yaml:\d+: grant to county_civil_affairs lists district_code as linkable"
    ):
        load_catalog(contracts_copy)
    county["linkable"] = ["household_id"]
    county["purpose"] = ""
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301") if f.severity == "error"]
    assert any("household_id: linkable for county_civil_affairs without a declared purpose" in m for m in messages), (
        messages
    )


def test_making_a_token_linkable_is_a_breaking_widening(contracts_copy):
    write_lock(load_catalog(contracts_copy), contracts_copy)
    path, doc, grants = _population_grants(contracts_copy)
    county = next(g for g in grants if g["consumer"] == "county_civil_affairs")
    county["linkable"] = ["household_id"]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    (problem,) = check_against_lock(load_catalog(contracts_copy), contracts_copy)
    (change,) = problem[0].changes
    assert (change.kind, change.breaking, change.field) == ("grant_widened", True, "household_id")


def test_lint_refuses_a_county_grant_that_reads_every_district(contracts_copy):
    """A county bureau reads its own districts only: a grant to it (or a group of counties) without that row scope
    would give it the whole city."""
    path = contracts_copy / "civil_affairs" / "low_income_roster.yaml"
    text = path.read_text("utf-8")
    assert text.count("rows: own_districts") == 1
    path.write_text(text.replace("        rows: own_districts\n", ""), "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301") if f.severity == "error"]
    assert any(
        "grant to county_civil_affairs gives county bureau(s) civil_affairs.furong" in m and "own_districts" in m
        for m in messages
    ), messages


def test_a_consumers_own_grant_beside_its_groups_is_said_to_apply_and_differing_group_grants_are_refused(
    contracts_copy, monkeypatch
):
    """芙蓉区 reached by the county group's grant and by one of its own reads by its own: lint says so when they
    differ, and `lidm contracts grants` marks the group's as not applied. Two differing group grants and none of
    its own cannot be applied at all: an error."""
    from typer.testing import CliRunner

    from lidm import cli
    from lidm.config import Settings

    path, doc, grants = _population_grants(contracts_copy)
    county = next(g for g in grants if g["consumer"] == "county_civil_affairs")
    own = {**county, "consumer": "civil_affairs.furong", "fields": {"district_code": "clear"}}
    grants.append(own)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    found = [f for f in lint(load_catalog(contracts_copy), "4301") if "has a grant of its own" in f.message]
    assert [(f.severity, f.contract) for f in found] == [("warning", "health.population")]
    assert "applies instead of the differing grant to county_civil_affairs" in found[0].message
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(contracts_dir=contracts_copy))
    out = CliRunner().invoke(cli.app, ["contracts", "grants", "civil_affairs.furong"], env={"COLUMNS": "250"})
    assert out.exit_code == 0 and out.output.count("not applied: its own grant applies") == 1, out.output

    grants.remove(own)
    grants.append({**county, "consumer": "civil_affairs", "fields": {"district_code": "clear"}})
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    consumers = contracts_copy / "consumers.yaml"
    text = consumers.read_text("utf-8") + "groups:\n  everyone_civil:\n    - civil_affairs.furong\n"
    consumers.write_text(text, "utf-8")
    grants[-1]["consumer"] = "everyone_civil"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    errors = [f.message for f in lint(load_catalog(contracts_copy), "4301") if f.severity == "error"]
    assert any("civil_affairs.furong is reached by differing grants" in m for m in errors), errors


def test_lint_refuses_a_shared_code_list_extended_with_codes_of_its_own(contracts_copy):
    """Reusing disability_grade (一级 to 四级) with grades 1-10 is another list: it must say so by its name."""
    other = contracts_copy / "health" / "population.yaml"
    doc = yaml.safe_load(other.read_text("utf-8"))
    grades = [{"value": str(i), "label": f"{'一二三四五六七八九十'[i - 1]}级"} for i in range(1, 11)]
    field = {
        "name": "injury_grade",
        "logicalType": "string",
        "classification": "sensitive",
        "enum": grades,
        "customProperties": [
            {"property": "lidmProtection", "value": "clear"},
            {"property": "lidmCodeList", "value": "disability_grade"},
        ],
    }
    doc["schema"][0]["properties"].append(field)
    other.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301") if f.severity == "error"]
    assert any("list disability_grade has no code 10, 5, 6, 7, 8, 9 elsewhere" in m for m in messages), messages
    # Its own list, under its own name, is fine; a subset of the shared list is fine too.
    field["customProperties"][1]["value"] = "work_injury_grade_ten"
    doc["schema"][0]["properties"][-1] = field
    doc["schema"][0]["properties"].append(field | {"name": "grade_again", "enum": grades[:2]})
    doc["schema"][0]["properties"][-1]["customProperties"] = [
        {"property": "lidmProtection", "value": "clear"},
        {"property": "lidmCodeList", "value": "disability_grade"},
    ]
    other.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    messages = [str(f) for f in lint(load_catalog(contracts_copy), "4301") if f.severity == "error"]
    assert not [m for m in messages if "has no code" in m], messages
