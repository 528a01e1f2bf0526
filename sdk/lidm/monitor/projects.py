"""The project list (项目清单) as data: the city's assistance programmes, each linked to what leads to it.

The seed (二(二)) asks the platform to keep a 需求清单, a 项目清单 and a 幸福清单. The project list is
``rules/projects.yaml``: per programme its id, Chinese name, department, kind (cash, in kind or a service, the
seed's "物质+服务", 三(四)), the service kind of a service, the happiness list's ``assistance_kind`` its records
carry, the policy basis quoted from the seed with its section, and what leads to it: ``outcomes`` (a rule's
warning answered with an outcome that grants, e.g. ``student_no_education_assistance`` + ``granted``) and
``sources`` (the happiness list's sources that record it routinely: rules/assistance/<source>.yaml).

Loading refuses, naming the file and the entry, an unknown rule, an outcome the disposition contract lacks or
that grants nothing, a department, kind or code the assistance-record contract lacks. ``lint`` only warns: a rule
that looks for help someone lacks (groups needs_more_help and may_qualify) and leads to no project, or a
happiness-list source no project names. The happiness list (``monitor.happiness``) names each record's project
with ``record_project``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lidm.errors import RuleError
from lidm.yamlfile import read_mapping

PROJECTS_FILE = "projects.yaml"
RECORD_CONTRACT = "platform.assistance_record"
DISPOSITION_CONTRACT = "platform.disposition"
# The outcomes that grant something a programme can follow from; the others (not eligible, terminated, …) do not.
GRANTING = ("granted", "included", "transferred_to_edge")
# Rules looking for help someone lacks (monitor.rules.Group): each should lead to a programme.
HELPING_GROUPS = ("needs_more_help", "may_qualify")


class ProjectError(RuleError):
    """The project list cannot be loaded, or names a rule, outcome, feed or code that does not exist."""


class Leads(BaseModel):
    """A rule's warning answered with this outcome leads to the programme."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rule: str
    outcome: str = "granted"


class Project(BaseModel):
    """One programme of the city's project list."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{2,39}$")
    name: str = Field(min_length=2)
    department: str
    kind: Literal["cash", "in_kind", "service"]
    service_kind: str | None = None
    assistance_kind: str
    section: str = Field(min_length=2)
    basis: str = Field(min_length=8)
    outcomes: tuple[Leads, ...] = ()
    sources: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _service(self) -> Project:
        if self.kind == "service" and not self.service_kind:
            raise ValueError("a service needs its service_kind")
        if self.kind != "service" and self.service_kind:
            raise ValueError(f"service_kind is for kind service, not {self.kind}")
        return self

    def as_row(self) -> dict[str, Any]:
        """The JSON form (lidm monitor projects --json)."""
        return self.model_dump(mode="json")


class ProjectList(BaseModel):
    """The file: ``projects:`` and the list."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    projects: tuple[Project, ...] = Field(min_length=1)


def projects_path(rules_dir: Path | None = None) -> Path:
    """rules/projects.yaml, beside the monitoring rules (LIDM_RULES_DIR)."""
    from lidm.monitor.rules import default_rules_dir

    return (rules_dir or default_rules_dir()) / PROJECTS_FILE


def _entry(data: Any, index: int) -> str:
    """How a message names an entry: its number in the file and its id when it has one."""
    raw = data.get("projects") if isinstance(data, dict) else None
    item = raw[index] if isinstance(raw, list) and index < len(raw) else None
    name = item.get("id") if isinstance(item, dict) else None
    return f"entry {index + 1}" + (f" ({name})" if name else "")


def _problem(data: Any, error: Any) -> str:
    loc = list(error["loc"])
    where = "projects"
    if len(loc) >= 2 and loc[0] == "projects" and isinstance(loc[1], int):
        where = _entry(data, loc[1])
        loc = loc[2:]
    field = ".".join(str(p) for p in loc)
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
    return f"{where}: {field + ': ' if field else ''}{message}"


def load_projects(
    path: Path,
    *,
    catalog: Any = None,
    rules: Sequence[Any] | None = None,
    sources: Iterable[str] | None = None,
) -> list[Project]:
    """The project list of ``path``, its structure checked; with a catalogue, rules and the happiness list's
    source names (rules/assistance/ file names without .yaml), checked against them."""
    data = read_mapping(path, "project list", ProjectError)
    try:
        listed = ProjectList.model_validate(data)
    except ValidationError as exc:
        raise ProjectError(f"{path}: " + "; ".join(_problem(data, e) for e in exc.errors())) from None
    projects = list(listed.projects)
    seen: set[str] = set()
    claimed: dict[tuple[str, str, str], str] = {}
    for i, p in enumerate(projects):
        if p.id in seen:
            raise ProjectError(f"{path}: {_entry(data, i)}: id: {p.id} is listed twice")
        seen.add(p.id)
        for j, lead in enumerate(p.outcomes):
            key = (lead.rule, lead.outcome, p.assistance_kind)
            if key in claimed:
                raise ProjectError(
                    f"{path}: {_entry(data, i)}: outcomes.{j}: {lead.rule} + {lead.outcome} granting "
                    f"{p.assistance_kind} already leads to {claimed[key]}; a record could not tell which"
                )
            claimed[key] = p.id
    if catalog is not None:
        for i, p in enumerate(projects):
            check_project(p, catalog, rules, sources, f"{path}: {_entry(data, i)}")
    return projects


def check_project(
    project: Project, catalog: Any, rules: Sequence[Any] | None, sources: Iterable[str] | None, at: str
) -> None:
    """Refuse a programme naming a code, outcome, rule or feed that does not exist (``at`` names file and entry)."""
    record = catalog[RECORD_CONTRACT]
    for name in ("department", "assistance_kind", "service_kind"):
        value = getattr(project, name)
        allowed = record.field(name).enum or ()
        if value is not None and value not in allowed:
            raise ProjectError(f"{at}: {name}: {value} is not among {RECORD_CONTRACT}'s codes ({', '.join(allowed)})")
    outcomes = catalog[DISPOSITION_CONTRACT].field("outcome").enum or ()
    known = {r.id for r in rules} if rules is not None else None
    for j, lead in enumerate(project.outcomes):
        if known is not None and lead.rule not in known:
            raise ProjectError(f"{at}: outcomes.{j}.rule: no rule {lead.rule}")
        if lead.outcome not in outcomes:
            raise ProjectError(f"{at}: outcomes.{j}.outcome: {lead.outcome} is no outcome of {DISPOSITION_CONTRACT}")
        if lead.outcome not in GRANTING:
            raise ProjectError(
                f"{at}: outcomes.{j}.outcome: {lead.outcome} grants nothing; a programme follows from "
                f"{', '.join(GRANTING)}"
            )
    declared = set(sources) if sources is not None else None
    for j, name in enumerate(project.sources):
        if declared is not None and name not in declared:
            raise ProjectError(f"{at}: sources.{j}: no happiness-list source rules/assistance/{name}.yaml")


def lint(projects: Sequence[Project], rules: Iterable[Any], sources: Iterable[Any] = ()) -> list[str]:
    """Warnings, not errors: helping rules that lead to no programme, happiness-list sources no programme names."""
    led = {lead.rule for p in projects for lead in p.outcomes}
    warnings = [
        f"rule {r.id} ({r.group_of.value}) leads to no project: add it to a project's outcomes"
        for r in rules
        if r.group_of.value in HELPING_GROUPS and r.id not in led
    ]
    named = {f for p in projects for f in p.sources}
    for s in sources:
        if s.source == "routine" and s.path.stem not in named:
            warnings.append(f"happiness-list source {s.path.name} is in no project's sources")
    return warnings


def by_rule(projects: Sequence[Project]) -> list[tuple[str, str, str, str]]:
    """(rule, outcome, assistance kind, project): a disposition of a warning of the rule, with the outcome and
    granting the programme's kind, belongs to the programme (``load_projects`` refuses two claiming the same)."""
    return [(lead.rule, lead.outcome, p.assistance_kind, p.id) for p in projects for lead in p.outcomes]


def by_source(projects: Sequence[Project], source: str) -> list[tuple[str | None, str]]:
    """(assistance kind or None, project) for the records of one happiness-list source: one programme naming the
    source takes them all; several are told apart by the record's kind."""
    ps = [p for p in projects if source in p.sources]
    return [(p.assistance_kind if len(ps) > 1 else None, p.id) for p in ps]


def project_table(settings: Any) -> tuple[list[Project], list[str]]:
    """A deployment's project list, checked against its catalogue and rules, and the lint warnings
    (``lidm monitor projects``)."""
    from lidm.contracts.load import load_catalog
    from lidm.monitor.assistance_spec import assistance_dir, load_sources
    from lidm.monitor.rules import load_rules

    catalog = load_catalog(settings.contracts_dir)
    rules = load_rules(settings.rules_dir, catalog=catalog, params=settings.rule_params)
    sources = load_sources(assistance_dir(settings.rules_dir), catalog)
    names = [p.stem for p in assistance_dir(settings.rules_dir).glob("*.yaml")]
    projects = load_projects(projects_path(settings.rules_dir), catalog=catalog, rules=rules, sources=names)
    return projects, lint(projects, rules, sources)
