"""Which section of the policy text each rule serves, and how many rules each section has.

The policy (长民发〔2025〕22号 in Changsha; every city has its own notice of the same national pattern) names the
situations monitoring must find, section by section. ``rules/scenarios/sections.yaml`` lists the sections with their
titles and, per hardship type, the section a rule that names none serves; a rule's ``scenario`` key overrides it.
Counting rules per section shows where the policy is covered and where nothing looks yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lidm.errors import RuleError
from lidm.yamlfile import read_mapping

if TYPE_CHECKING:  # the rule model imports this module to fill in its defaults
    from lidm.monitor.rules import Rule

SECTIONS_FILE = Path("scenarios") / "sections.yaml"
UNASSIGNED = "（未标注）"  # a rule naming no section whose hardship type has no default either
GROUPS = ("needs_more_help", "may_qualify", "may_leave")


@dataclass(frozen=True)
class Scenarios:
    """The policy's sections (code -> title) and each hardship type's default section."""

    document: str = ""
    sections: dict[str, str] = field(default_factory=dict)
    by_hardship: dict[str, str] = field(default_factory=dict)

    def title(self, code: str) -> str:
        """The section's title, or an empty text for a code the file does not list."""
        return self.sections.get(code, "")


def load_scenarios(rules_dir: Path) -> Scenarios:
    """The sections file beside the rules; none (no titles, no defaults) when the deployment has no such file."""
    path = rules_dir / SECTIONS_FILE
    if not path.is_file():
        return Scenarios()
    data = read_mapping(path, "list of policy sections", RuleError, "document, sections, by_hardship_type")
    sections, defaults = data.get("sections") or {}, data.get("by_hardship_type") or {}
    if not isinstance(sections, dict) or not isinstance(defaults, dict):
        raise RuleError(f"{path}: sections and by_hardship_type are mappings")
    norm = {_norm(k): str(v) for k, v in sections.items()}
    unknown = sorted({_norm(v) for v in defaults.values()} - set(norm))
    if unknown:
        raise RuleError(f"{path}: by_hardship_type names sections it does not list: {', '.join(unknown)}")
    return Scenarios(str(data.get("document") or ""), norm, {str(k): _norm(v) for k, v in defaults.items()})


def with_scenarios(rules: Sequence[Rule], rules_dir: Path) -> list[Rule]:
    """The rules with their section filled in from their hardship type where the file names none; a section the
    sections file does not list is refused, naming the rule (a typo would otherwise count as a section of its own)."""
    scenarios = load_scenarios(rules_dir)
    out = []
    for rule in rules:
        if rule.scenario and scenarios.sections and rule.scenario not in scenarios.sections:
            raise RuleError(
                f"rule {rule.id}: scenario {rule.scenario} is not a section of {SECTIONS_FILE}; "
                f"one of {', '.join(scenarios.sections)}"
            )
        default = scenarios.by_hardship.get(rule.hardship_type)
        out.append(rule if rule.scenario or not default else rule.model_copy(update={"scenario": default}))
    return out


def per_scenario(rules: Sequence[Rule], scenarios: Scenarios) -> list[dict[str, Any]]:
    """Rules per section in the policy's order, every listed section shown (0 where no rule looks), then any
    section the file does not list and the unassigned: {scenario, title, rules, needs_more_help, …}."""
    rows: dict[str, dict[str, Any]] = {
        code: {"scenario": code, "title": title, "rules": 0, **dict.fromkeys(GROUPS, 0)}
        for code, title in scenarios.sections.items()
    }
    for rule in rules:
        code = rule.scenario or UNASSIGNED
        row = rows.setdefault(code, {"scenario": code, "title": "", "rules": 0, **dict.fromkeys(GROUPS, 0)})
        row["rules"] += 1
        row[rule.group_of.value] += 1
    return list(rows.values())


def _norm(code: Any) -> str:
    return str(code).strip().replace("（", "(").replace("）", ")")


GROUP_LABELS = {
    "needs_more_help": "在保对象需加强帮扶 / on the roster, needs more help",
    "may_qualify": "未纳入、可能符合条件（主动发现）/ not on the roster, may qualify",
    "may_leave": "在保对象可能不再符合条件（应退）/ on the roster, may no longer qualify",
}
NO_GROUP = "unknown"  # warnings of a rule no longer loaded


@dataclass
class GroupCounts:
    """Warnings of one group: how many rules raised some, and where the warnings are."""

    rules: int = 0
    open: int = 0
    overdue: int = 0
    disposed: int = 0
    closed: int = 0

    @property
    def total(self) -> int:
        return self.open + self.disposed + self.closed


def group_counts(by_rule: dict[str, Any], groups: dict[str, str]) -> dict[str, GroupCounts]:
    """Warning counts per rule (stats.WarningCounts) totalled per group, every group shown, in the loop's order:
    the report keeps "needs more help", "may qualify" and "may leave" apart, as the seed's three duties."""
    out = {g: GroupCounts() for g in GROUPS}
    for rule_id, c in by_rule.items():
        g = out.setdefault(groups.get(rule_id, NO_GROUP), GroupCounts())
        g.rules += 1
        g.open, g.overdue, g.disposed, g.closed = (
            g.open + c.open,
            g.overdue + c.overdue,
            g.disposed + c.disposed,
            g.closed + c.closed,
        )
    return out


def in_group_order(by_rule: dict[str, Any], groups: dict[str, str]) -> list[tuple[str, Any]]:
    """(rule, counts) sorted by group in the loop's order, then rule: one group's rules read together."""
    order = {g: i for i, g in enumerate(GROUPS)}
    return sorted(by_rule.items(), key=lambda kv: (order.get(groups.get(kv[0], NO_GROUP), len(order)), kv[0]))
