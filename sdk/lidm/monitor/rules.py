"""Monitoring rules as data: loaded from YAML, checked against the contract catalogue before they run."""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Sequence
from datetime import date, timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from lidm import workdays
from lidm.config import duration
from lidm.contracts.model import Contract, LogicalType, Protection
from lidm.errors import LidmError, RuleError, RuleParamError
from lidm.monitor.engine import Compiled
from lidm.monitor.params import Number, Param, ParamProblem
from lidm.monitor.scenarios import with_scenarios
from lidm.yamlfile import read_mapping

OPERATORS = (
    "not",
    "gt",
    "ge",
    "lt",
    "le",
    "within_days",
    "null",
    "differs_from_subject",
    "same_as_subject",
    "holds",  # a list of codes (civil_affairs.low_income_roster categories) holds one of these
    "holds_none",  # ... holds none of these
)
_PARAM = re.compile(r"^\$([a-z_][a-z0-9_]*)$")
QUIET_DEFAULT = timedelta(days=180)  # a rule that says nothing: half a year, the policy's "not again and again"
QUIET_LONGEST = timedelta(days=3650)
ROSTER_FEED = "civil_affairs.low_income_roster"  # the low-income roster: a rule's group follows from it by default
# A section of the policy text, e.g. 三(二)1: chapter, section in brackets, item number; fullwidth brackets accepted.
_SECTION = re.compile(r"^[一二三四五六七八九十]+\([一二三四五六七八九十]+\)[0-9]*$")


class Urgency(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Group(StrEnum):
    """The three ways cross-matching looks (DOMAIN: the monitoring loop), kept apart in the report."""

    NEEDS_MORE_HELP = "needs_more_help"  # on the roster, needs more help
    MAY_QUALIFY = "may_qualify"  # not on the roster, may qualify (主动发现, 应救尽救)
    MAY_LEAVE = "may_leave"  # on the roster, may no longer qualify (应退尽退)


class Total(BaseModel):
    """The sum of a field over the person's rows (optionally within a window) must exceed a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    field: str
    greater_than: Any
    date_field: str | None = None
    within_days: Any = None


class Clause(BaseModel):
    """Rows of another feed for the same person (or household) that must exist, or must not."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    feed: str
    on: Literal["person", "household"] = "person"
    where: dict[str, Any] = Field(default_factory=dict)
    total: Total | None = None


class Subject(BaseModel):
    """The feed whose rows the rule looks at: one warning per matching person."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    feed: str
    category: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)


class Rule(BaseModel):
    """One cross-matching indicator of the monitoring platform (大数据比对规则)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    version: str
    title: str
    hardship_type: str
    department: str
    # Where the warning must be acted on: the city department, the county bureau or the street office of the
    # person's district (lidm.monitor.routing); unset means city, as before levels existed.
    level: Literal["city", "county", "street"] = "city"
    urgency: Urgency
    # The deadline, one of the two: working days (个工作日, lidm.workdays) or, for rule files written before them,
    # calendar days (ending on a working day).
    due_working_days: int | None = Field(default=None, gt=0, le=250)
    due_days: int | None = Field(default=None, gt=0, le=365)
    summary: str
    params: dict[str, Param] = Field(default_factory=dict)  # declared: type, range, default (rules/README.md)
    # How long a "not eligible" answer holds back the same warning for the same person (lidm.monitor.quiet).
    quiet_after_not_eligible: timedelta = QUIET_DEFAULT
    subject: Subject
    match: tuple[Clause, ...] = ()
    match_any: tuple[Clause, ...] = ()
    absent: tuple[Clause, ...] = ()
    # The policy section the rule serves (三(二)2), counted per section by `lidm monitor rules`; when the file says
    # none, rules/scenarios/sections.yaml gives its hardship type's section (lidm.monitor.scenarios).
    scenario: str | None = None
    # Which of the report's three groups the warnings belong to; by default from the subject (group_of).
    group: Group | None = None
    _overrides: dict[str, Number] = PrivateAttr(default_factory=dict)  # LIDM_RULE_PARAMS, each checked

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{2,39}", value):
            raise ValueError("a rule id is 3-40 lowercase letters, digits and underscores")
        return value

    @field_validator("scenario", mode="before")
    @classmethod
    def _scenario(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip().replace("（", "(").replace("）", ")")
        if not _SECTION.fullmatch(text):
            raise ValueError("a section of the policy text like 二(三) or 三(二)1")
        return text

    @model_validator(mode="after")
    def _one_deadline(self) -> Rule:
        if (self.due_working_days is None) == (self.due_days is None):
            raise ValueError(
                "give exactly one deadline: due_working_days (working days, 个工作日) or due_days (calendar days)"
            )
        return self

    @property
    def due_text(self) -> str:
        """The deadline as listings show it: 20 working days, or 30 days."""
        if self.due_working_days is not None:
            return f"{self.due_working_days} working days"
        return f"{self.due_days} days"

    def due_date(self, raised: date, calendar: workdays.Calendar = workdays.OFFICIAL) -> date:
        """When an answer to a warning raised on ``raised`` is due: always a working day (lidm.workdays)."""
        what = f"rule {self.id} (due in {self.due_text} from {raised.isoformat()})"
        if self.due_working_days is not None:
            return calendar.add_working_days(raised, self.due_working_days, what)
        assert self.due_days is not None  # _one_deadline
        return calendar.next_working_day(raised + timedelta(days=self.due_days), what)

    @field_validator("quiet_after_not_eligible", mode="before")
    @classmethod
    def _quiet(cls, value: Any) -> timedelta:
        period = value if isinstance(value, timedelta) else duration(value) if isinstance(value, str) else None
        if period is None or period % timedelta(days=1) or not timedelta(0) <= period <= QUIET_LONGEST:
            raise ValueError(f"an ISO 8601 duration in whole days from P0D to P{QUIET_LONGEST.days}D, e.g. P180D")
        return period

    @property
    def quiet_text(self) -> str:
        """The quiet period as the rule file writes it (P180D)."""
        return f"P{self.quiet_after_not_eligible.days}D"

    @property
    def group_of(self) -> Group:
        """The rule's group: as its file says, else from its subject (the roster: needs more help; else may qualify)."""
        if self.group is not None:
            return self.group
        return Group.NEEDS_MORE_HELP if self.subject.feed == ROSTER_FEED else Group.MAY_QUALIFY

    @property
    def param_values(self) -> dict[str, Number]:
        """The value of each param in force: its declared default unless LIDM_RULE_PARAMS overrides it."""
        return {name: self._overrides.get(name, p.default) for name, p in self.params.items()}

    @cached_property
    def feeds(self) -> tuple[str, ...]:
        """Every feed the rule reads, subject first: the Assets a monitoring DAG waits on."""
        seen = [self.subject.feed]
        for clause in (*self.match, *self.match_any, *self.absent):
            if clause.feed not in seen:
                seen.append(clause.feed)
        return tuple(seen)

    def with_params(self, overrides: dict[str, Any]) -> Rule:
        """The rule with some of its params replaced (LIDM_RULE_PARAMS): only params it declares, each within the
        range its file declares; refused naming rule, param, what is wrong and what is allowed."""
        unknown = set(overrides) - set(self.params)
        if unknown:
            has = f"it has {', '.join(self.params)}" if self.params else "it has none"
            raise RuleParamError(f"LIDM_RULE_PARAMS: rule {self.id} has no param {', '.join(sorted(unknown))}; {has}")
        checked = {}
        for name, raw in overrides.items():
            param = self.params[name]
            try:
                checked[name] = param.parse(raw)
            except ParamProblem as exc:
                raise RuleParamError(
                    f"LIDM_RULE_PARAMS {self.id}.{name}: the value {exc}; allowed: {param.allowed()}"
                ) from None
        rule = self.model_copy()
        rule._overrides = {**self._overrides, **checked}
        return rule

    def value(self, raw: Any, as_of: date) -> Any:
        """A literal of the rule with $param and $as_of_year resolved."""
        if isinstance(raw, list):
            return [self.value(v, as_of) for v in raw]
        if isinstance(raw, str) and (m := _PARAM.match(raw)):
            name = m.group(1)
            if name == "as_of_year":
                return as_of.year
            if name not in self.params:
                raise RuleError(f"rule {self.id}: ${name} is not one of its params")
            return self.param_values[name]
        return raw

    def as_row(self) -> dict[str, Any]:
        """The rule for `lidm monitor rules --json`: what it looks for, who must act, how fast, what it reads."""
        return {
            "rule": self.id,
            "version": self.version,
            "title": self.title,
            "hardship_type": self.hardship_type,
            "department": self.department,
            "level": self.level,
            "urgency": self.urgency.value,
            "due_working_days": self.due_working_days,
            "due_days": self.due_days,
            "feeds": list(self.feeds),
            "params": self.param_values,
            "param_ranges": {name: p.as_row() for name, p in self.params.items()},
            "quiet_after_not_eligible": self.quiet_text,
            "summary": self.summary_text(),
            "scenario": self.scenario,
            "group": self.group_of.value,
        }

    def summary_text(self) -> str:
        """The warning's reason with params filled in; params are thresholds, never personal values."""
        text = " ".join(self.summary.split())
        for name, value in self.param_values.items():
            text = text.replace(f"${name}", str(value))
        return text


def default_rules_dir() -> Path:
    """rules/ of the source checkout, or the copy installed with the package."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "rules"
        if (candidate / "README.md").is_file() and any(candidate.glob("*.yaml")):
            return candidate
    return Path(str(importlib.resources.files("lidm_rules")))


def load_rule(path: Path) -> Rule:
    """One rule file; refused naming the file and the key, a param whose default is outside its own range too."""
    data = read_mapping(path, "rule", RuleError)
    for kind in ("match", "match_any", "absent"):  # YAML 1.1 reads a bare `on:` key as the boolean true
        for clause in data.get(kind) or ():
            if isinstance(clause, dict) and True in clause:
                clause["on"] = clause.pop(True)
    try:
        rule = Rule.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " * bool(e["loc"]) + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise RuleError(f"{path}: {problems}") from None
    if rule.id != path.stem:
        raise RuleError(f"{path}: the rule id {rule.id!r} must equal the file name {path.stem!r}")
    return rule


def load_rules(directory: Path | None = None, catalog: Any = None, params: dict[str, Any] | None = None) -> list[Rule]:
    """Every rule of a folder, checked against the catalogue; params as {"rule_id.param": value}."""
    directory = directory or default_rules_dir()
    # projects.yaml beside the rules is the project list (lidm.monitor.projects), not a rule
    rules = [load_rule(p) for p in sorted(directory.glob("*.yaml")) if p.name != "projects.yaml"]
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in (params or {}).items():
        rule_id, _, name = key.partition(".")
        overrides.setdefault(rule_id, {})[name] = value
    known = {r.id for r in rules}
    if unknown := set(overrides) - known:
        raise RuleParamError(
            f"LIDM_RULE_PARAMS names no rule {', '.join(sorted(unknown))}; its keys are rule_id.param, "
            "e.g. high_medical_cost_assistance.threshold"
        )
    rules = [r.with_params(overrides[r.id]) if r.id in overrides else r for r in rules]
    rules = with_scenarios(rules, directory)
    if catalog is not None:
        for rule in rules:
            check_rule(rule, catalog)
    return rules


def due_dates(rules: Sequence[Rule], as_of: date, calendar: workdays.Calendar = workdays.OFFICIAL) -> dict[str, date]:
    """Every rule's due date for a run on ``as_of``, worked out before the run starts: a calendar that does not
    reach that far stops the run with one clear ConfigError (lidm.workdays) instead of half-way."""
    if not calendar.assumed(as_of):
        workdays.check_covered(as_of, "the monitoring run's day")
    return {rule.id: rule.due_date(as_of, calendar) for rule in rules}


def check_rule(rule: Rule, catalog: Any) -> None:
    """Refuse a rule that names an unknown feed, field, code, department or hardship type."""
    where = f"rule {rule.id}"
    warning = catalog["platform.warning"]
    for field_name, value in (("hardship_type", rule.hardship_type), ("target_department", rule.department)):
        allowed = warning.field(field_name).enum or ()
        if value not in allowed:
            raise RuleError(f"{where}: {field_name} {value!r} is not one of {', '.join(allowed)}")
    subject = _contract(catalog, rule.subject.feed, where)
    _need_token(subject, "id_number", f"{where}, subject")
    if rule.subject.category:
        _field(subject, rule.subject.category, f"{where}, subject")
    _check_where(rule, subject, rule.subject.where, None, f"{where}, subject")
    for kind, clauses in (("match", rule.match), ("match_any", rule.match_any), ("absent", rule.absent)):
        for i, clause in enumerate(clauses, 1):
            at = f"{where}, {kind} {i} ({clause.feed})"
            contract = _contract(catalog, clause.feed, at)
            join = "id_number" if clause.on == "person" else "household_id"
            _need_token(contract, join, at)
            if clause.on == "household":
                _need_token(subject, "household_id", f"{where}, subject")
            _check_where(rule, contract, clause.where, subject, at)
            if clause.total:
                if kind == "absent":
                    raise RuleError(f"{at}: a total belongs in match or match_any")
                total_field = _field(contract, clause.total.field, at)
                if total_field.type not in (LogicalType.NUMBER, LogicalType.INTEGER):
                    raise RuleError(f"{at}: total.field {clause.total.field} is not a number")
                if clause.total.date_field:
                    _field(contract, clause.total.date_field, at)
    Compiled(rule, catalog, date.today())  # compiling resolves every $param and literal type


def _contract(catalog: Any, feed: str, at: str) -> Contract:
    if feed not in catalog:
        raise RuleError(f"{at}: no contract {feed}")
    return catalog[feed]


def _field(contract: Contract, name: str, at: str):  # type: ignore[no-untyped-def]
    try:
        f = contract.field(name)
    except (KeyError, LidmError):
        f = None
    if f is None:
        raise RuleError(f"{at}: {contract.id} has no field {name}")
    if Protection.CLEAR not in f.protection and Protection.TOKEN not in f.protection:
        raise RuleError(f"{at}: {contract.id}.{name} is not kept in clear, so a rule cannot compare it")
    return f


def _need_token(contract: Contract, name: str, at: str) -> None:
    try:
        f = contract.field(name)
    except (KeyError, LidmError):
        f = None
    if f is None or Protection.TOKEN not in f.protection:
        raise RuleError(f"{at}: {contract.id} has no {name} token to match on")


def _check_where(rule: Rule, contract: Contract, where: dict[str, Any], subject: Contract | None, at: str) -> None:
    for name, cond in where.items():
        f = _field(contract, name, at)
        if isinstance(cond, dict):
            for op, operand in cond.items():
                if op not in OPERATORS:
                    raise RuleError(f"{at}: {name}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
                if op in ("differs_from_subject", "same_as_subject"):
                    if subject is None:
                        raise RuleError(f"{at}: {name}: {op} only applies in a clause")
                    _field(subject, operand, at)
                elif op == "not":
                    _check_codes(rule, f, operand, name, at)
                elif op in ("holds", "holds_none"):
                    _check_held(rule, contract, operand, name, at)
        else:
            _check_codes(rule, f, cond, name, at)


def _check_codes(rule: Rule, f: Any, value: Any, name: str, at: str) -> None:
    values = value if isinstance(value, list) else [value]
    resolved = [rule.value(v, date.today()) for v in values]
    if f.enum:
        bad = [str(v) for v in resolved if str(v) not in f.enum]
        if bad:
            raise RuleError(f"{at}: {name}: {', '.join(bad)} not among its codes {', '.join(f.enum)}")


def _check_held(rule: Rule, contract: Contract, value: Any, name: str, at: str) -> None:
    """holds/holds_none name codes of the list the field holds: the codes of the contract's single-code field of
    the same list (categories holds codes of category)."""
    codes: set[str] = set()
    for f in contract.fields:
        if f.enum and f.name in (name[:-3] + "y", name[:-1]):  # categories -> category, codes -> code
            codes |= set(f.enum)
    values = [str(rule.value(v, date.today())) for v in (value if isinstance(value, list) else [value])]
    if not codes:
        raise RuleError(f"{at}: {name}: holds applies to a list of codes beside a coded field ({name} has none)")
    if bad := [v for v in values if v not in codes]:
        raise RuleError(f"{at}: {name}: {', '.join(bad)} not among its codes {', '.join(sorted(codes))}")
