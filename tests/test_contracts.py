"""Contracts: valid ODCS v3, typed loading, and refusal of malformed files with file, line and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from lidm.contracts import Classification, Protection, UpdateMode, load_catalog, load_contract
from lidm.contracts.load import default_contracts_dir, odcs_schema
from lidm.errors import ContractError

CONTRACTS = default_contracts_dir()
FILES = sorted(CONTRACTS.glob("*/*.yaml"))


# Every dataset of DOMAIN.md (section 二(二) of the seed), plus the platform's own contracts.
EXPECTED = {
    "civil_affairs": [
        "low_income_roster",
        "children_in_need",
        "hardship_disability_subsidy",
        "severe_disability_care_subsidy",
        "temporary_assistance",
    ],
    "education": ["education_assistance", "student_enrollment"],
    "hr_social_security": ["work_injury", "unemployment", "employment", "institution_pension", "enterprise_pension"],
    "housing": ["public_rental_housing", "rural_house_renovation"],
    "agriculture_rural": ["retired_fishermen", "return_risk_monitoring", "relocated_households"],
    "health": ["population", "medical_expenses", "disease_emergency_fund", "deaths"],
    "emergency": ["disaster_relief"],
    "medical_insurance": ["medical_assistance", "insurance_reimbursements"],
    "disability_federation": ["disability_certificates"],
    "justice": ["legal_aid"],
    "platform": ["warning", "disposition", "assistance_record"],
}


def test_every_dataset_of_every_department_has_a_contract():
    ids = {c.id for c in load_catalog()}
    expected = {f"{dept}.{name}" for dept, names in EXPECTED.items() for name in names}
    assert sorted(expected - ids) == []
    assert len(expected) == 29


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_contract_is_valid_odcs_v3_against_the_shipped_json_schema(path: Path):
    doc = yaml.safe_load(path.read_text("utf-8"))
    jsonschema.Draft202012Validator(odcs_schema()).validate(doc)
    assert doc["apiVersion"] >= "v3.1.0"


def test_the_json_schema_check_has_teeth():
    doc = yaml.safe_load(FILES[0].read_text("utf-8"))
    doc["schema"][0]["properties"][0]["logicalType"] = "uuid-ish"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(odcs_schema()).validate(doc)


def test_population_contract_is_typed():
    c = load_catalog()["health.population"]
    assert c.key == ("id_number",)
    assert c.key_columns() == ["id_number_token"]
    assert c.update_mode is UpdateMode.FULL
    idn = c.field("id_number")
    assert idn.classification is Classification.DIRECT_IDENTIFIER
    assert idn.protection == (Protection.TOKEN, Protection.ENCRYPT, Protection.MASK)
    assert [col for col, _ in idn.output_columns()] == ["id_number_token", "id_number_masked"]  # + the row's _sealed
    assert [f.name for f in c.sealed_fields] == ["id_number", "name", "phone", "address"]
    assert set(c.field("gender").enum) == {"male", "female"}


def test_roster_covers_every_low_income_category():
    c = load_catalog()["civil_affairs.low_income_roster"]
    assert c.field("category").enum == (
        "dibao",
        "tekun",
        "dibao_edge",
        "rigid_expense",
        "return_risk",
        "other_hardship",
    )


def test_no_direct_identifier_is_stored_in_clear():
    for c in load_catalog():
        for f in c.fields:
            if f.classification is Classification.DIRECT_IDENTIFIER:
                assert Protection.CLEAR not in f.protection, f"{c.id}.{f.name}"


def _write(tmp_path: Path, text: str, name: str = "health/population.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def _population_text() -> str:
    return (CONTRACTS / "health" / "population.yaml").read_text("utf-8")


def test_yaml_error_names_file_and_line(tmp_path: Path):
    text = re.sub(r"^version: (\S+)$", r"version: [\1", _population_text(), count=1, flags=re.M)
    path = _write(tmp_path, text)
    with pytest.raises(ContractError, match=r"population\.yaml:\d+: YAML error"):
        load_contract(path)


def test_missing_protection_names_field_and_line(tmp_path: Path):
    text = _population_text().replace(
        "          - {property: lidmProtection, value: [encrypt, mask]}\n      - name: gender",
        "          - {property: other, value: 1}\n      - name: gender",
    )
    path = _write(tmp_path, text)
    with pytest.raises(ContractError, match=r"population\.yaml:\d+: field name has no lidmProtection"):
        load_contract(path)


def test_duplicate_field_is_refused(tmp_path: Path):
    doc = yaml.safe_load(_population_text())
    props = doc["schema"][0]["properties"]
    props.append(dict(props[1]))
    path = _write(tmp_path, yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(ContractError, match="field name is declared twice"):
        load_contract(path)


def test_unknown_protection_is_refused(tmp_path: Path):
    path = _write(tmp_path, _population_text().replace("value: [token, encrypt, mask]", "value: [token, hash]"))
    with pytest.raises(ContractError, match="field id_number"):
        load_contract(path)


def test_not_odcs_is_refused_with_location(tmp_path: Path):
    path = _write(tmp_path, _population_text().replace("logicalType: date", "logicalType: datetime", 1))
    with pytest.raises(ContractError, match=r"not valid ODCS v3 at schema/0/properties/3"):
        load_contract(path)


def test_contract_id_must_match_its_path(tmp_path: Path):
    _write(tmp_path, _population_text(), "health/people.yaml")
    with pytest.raises(ContractError, match="does not match its path"):
        load_catalog(tmp_path)


def test_incremental_contract_needs_a_watermark(tmp_path: Path):
    text = _population_text().replace("value: full}", "value: incremental}")
    with pytest.raises(ContractError, match="watermark"):
        load_contract(_write(tmp_path, text))


def test_contract_loads_into_json_serialisable_model():
    c = load_catalog()["health.population"]
    assert json.loads(c.model_dump_json())["id"] == "health.population"


# --------------------------------------------------------------------------- the compiled catalogue


def _catalogue_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "contracts"
    _write(folder, _population_text())
    return folder


def test_a_compiled_catalogue_is_used_until_a_contract_changes_and_a_broken_one_is_still_refused(
    tmp_path: Path, monkeypatch
):
    import lidm.contracts.load as load_module

    monkeypatch.setenv("LIDM_CACHE_DIR", str(tmp_path / "cache"))
    folder = _catalogue_folder(tmp_path)
    assert load_catalog(folder).ids() == ["health.population"]
    (kept,) = (tmp_path / "cache").glob("catalog-*.pickle")
    assert oct(kept.stat().st_mode & 0o777) == "0o600" and oct((tmp_path / "cache").stat().st_mode & 0o777) == "0o700"

    def no_schema_check(_doc):
        raise AssertionError("the ODCS schema was checked again for an unchanged catalogue")

    monkeypatch.setattr(load_module, "_first_odcs_error", no_schema_check)
    assert load_catalog(folder)["health.population"].title  # compiled: no schema check
    monkeypatch.undo()
    monkeypatch.setenv("LIDM_CACHE_DIR", str(tmp_path / "cache"))

    # An edit changes the key: the contract is checked again and refused, with file and line.
    path = folder / "health" / "population.yaml"
    path.write_text(re.sub(r"^version: (\S+)$", r"version: [\1", path.read_text("utf-8"), count=1, flags=re.M))
    with pytest.raises(ContractError, match=r"population\.yaml:\d+: YAML error"):
        load_catalog(folder)
    path.write_text(_population_text().replace("kind: DataContract", "kind: NotAContract"), "utf-8")
    with pytest.raises(ContractError, match="not valid ODCS v3"):
        load_catalog(folder)


def test_a_compiled_catalogue_others_could_write_is_ignored(tmp_path: Path, monkeypatch):
    import pickle

    cache = tmp_path / "cache"
    monkeypatch.setenv("LIDM_CACHE_DIR", str(cache))
    folder = _catalogue_folder(tmp_path)
    load_catalog(folder)
    (kept,) = cache.glob("catalog-*.pickle")
    kept.write_bytes(pickle.dumps({"forged": True}))  # whoever could write it chose what it holds
    kept.chmod(0o666)
    assert load_catalog(folder).ids() == ["health.population"]  # not trusted: checked afresh
    (kept,) = cache.glob("catalog-*.pickle")
    kept.write_bytes(pickle.dumps({"forged": True}))
    kept.chmod(0o600)
    cache.chmod(0o777)
    assert load_catalog(folder).ids() == ["health.population"]  # a folder others may write: not trusted either
