"""The report's charts and labels: plotly figures of the monitoring figures, labelled from the contracts.

Labels come from the contracts' enum labels (Chinese) with the code in English beside them.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from lidm.monitor import stats
from lidm.monitor.happiness import ASSISTANCE_CONTRACT
from lidm.monitor.lifecycle import WARNING_CONTRACT

FONT = "PingFang SC, Microsoft YaHei, Noto Sans CJK SC, Source Han Sans SC, sans-serif"
# Twelve distinct colours, one per kind of assistance in the contract's order.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#17becf", "#8c564b",
)  # fmt: skip
STATUS_COLOURS = {"open": "#f28e2b", "overdue": "#e15759", "disposed": "#59a14f", "closed": "#bab0ac"}
# Which contract field's enum labels name each kind of code in the report.
LABEL_FIELDS = {
    "department": (WARNING_CONTRACT, "target_department"),
    "hardship": (WARNING_CONTRACT, "hardship_type"),
    "category": (WARNING_CONTRACT, "low_income_category"),
    "urgency": (WARNING_CONTRACT, "urgency"),
    "warning_status": (WARNING_CONTRACT, "status"),
    "kind": (ASSISTANCE_CONTRACT, "assistance_kind"),
    "service": (ASSISTANCE_CONTRACT, "service_kind"),
    "disbursement": (ASSISTANCE_CONTRACT, "disbursement_status"),
    "source": (ASSISTANCE_CONTRACT, "source"),
    "outcome": ("platform.disposition", "outcome"),
}


class Labels:
    """Chinese label and English code of every code the report shows, from the contracts' enums."""

    def __init__(self, catalog: Any, rule_titles: dict[str, str] | None = None) -> None:
        self._labels: dict[str, dict[str, str]] = {}
        for kind, (contract_id, field_name) in LABEL_FIELDS.items():
            if contract_id not in catalog:
                continue
            f = catalog[contract_id].field(field_name)
            self._labels[kind] = {v: lab for v, lab in zip(f.enum or (), f.enum_labels or (), strict=False) if lab}
        self.rule_titles = rule_titles or {}
        consumers = getattr(catalog, "consumers", None)
        self.districts: dict[str, str] = dict(consumers.districts) if consumers is not None else {}
        kinds = list(self._labels.get("kind", {}))
        self._colours = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}

    def __call__(self, kind: str, code: str | None) -> str:
        """'医疗救助 / medical assistance'; an empty code is '（空）/ none'."""
        if not code:
            return "未在册 / not on the roster" if kind == "category" else "（空）/ none"
        zh = self._labels.get(kind, {}).get(code)
        en = code.replace("_", " ")
        return f"{zh} / {en}" if zh else code

    def district(self, code: str | None) -> str:
        """A district as a person reads it: 芙蓉区 (consumers.yaml); a code the city does not have stays a code."""
        if not code:
            return "（空）/ none"
        return self.districts.get(code, code)

    def order(self, kind: str) -> Any:
        """Sort key putting codes in their contract's order (unknown codes last)."""
        codes = list(self._labels.get(kind, {}))
        return lambda code: (codes.index(code) if code in codes else len(codes), code)

    def colour(self, kind_code: str) -> str:
        return self._colours.get(kind_code, "#999999")

    def rule(self, rule_id: str) -> str:
        return self.rule_titles.get(rule_id, rule_id)

    def rule_short(self, rule_id: str) -> str:
        """The Chinese half of a rule's title (short enough for a chart axis), else its id."""
        return self.rule_titles.get(rule_id, rule_id).split(" / ")[0]


def layout(fig: go.Figure, title: str, *, height: int = 380, horizontal: bool = False) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        font={"family": FONT, "size": 12},
        barmode="stack",
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.15},
        plot_bgcolor="#fafafa",
    )
    if horizontal:
        fig.update_yaxes(autorange="reversed", automargin=True)
    else:
        fig.update_xaxes(automargin=True)
    return fig


def chart(fig: go.Figure | None, div_id: str) -> str:
    if fig is None:
        return '<p class="empty">暂无数据 / no data yet</p>'
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def warnings_chart(counts: dict[str, stats.WarningCounts], title: str, label: Any) -> go.Figure | None:
    if not counts:
        return None
    names = [label(k) for k in counts]
    fig = go.Figure()
    parts = (
        ("open", "未办结 / open", lambda c: c.open - c.overdue),
        ("overdue", "已逾期 / overdue", lambda c: c.overdue),
        ("disposed", "已办结 / disposed", lambda c: c.disposed),
        ("closed", "条件消失关闭 / closed", lambda c: c.closed),
    )
    for key, name, value in parts:
        fig.add_bar(
            y=names, x=[value(c) for c in counts.values()], name=name, orientation="h", marker_color=STATUS_COLOURS[key]
        )
    return layout(fig, title, height=max(260, 60 + 28 * len(names)), horizontal=True)


def overdue_chart(overdue: dict[str, stats.OverdueCount], labels: Labels) -> go.Figure | None:
    if not overdue:
        return None
    names = [labels("department", d) for d in overdue]
    fig = go.Figure()
    fig.add_bar(x=names, y=[c.now for c in overdue.values()], name="当前逾期 / overdue now", marker_color="#e15759")
    fig.add_bar(x=names, y=[c.ever for c in overdue.values()], name="曾逾期 / ever overdue", marker_color="#f1a9a0")
    fig = layout(fig, "逾期预警（按部门）/ Overdue warnings by department")
    fig.update_layout(barmode="group")
    return fig


def outcome_chart(outcomes: dict[str, dict[str, int]], labels: Labels) -> go.Figure | None:
    if not outcomes:
        return None
    names = [labels("department", d) for d in outcomes]
    codes = sorted({o for per in outcomes.values() for o in per})
    fig = go.Figure()
    for code in codes:
        fig.add_bar(x=names, y=[per.get(code, 0) for per in outcomes.values()], name=labels("outcome", code))
    return layout(fig, "处置结果（按部门）/ Disposition outcomes by department")


def totals_chart(totals: list[stats.AssistanceTotal], labels: Labels, *, what: str, title: str) -> go.Figure | None:
    """Stacked bars per department, one colour per kind of assistance (the same colour in every report)."""
    if not any(getattr(t, what) for t in totals):
        return None
    depts = list(dict.fromkeys(t.department for t in totals))
    names = [labels("department", d) for d in depts]
    fig = go.Figure()
    for kind in sorted({t.kind for t in totals}, key=labels.order("kind")):
        by_dept = {t.department: getattr(t, what) for t in totals if t.kind == kind}
        fig.add_bar(
            y=names,
            x=[by_dept.get(d, 0) for d in depts],
            name=labels("kind", kind),
            orientation="h",
            marker_color=labels.colour(kind),
        )
    fig = layout(fig, title, height=max(300, 120 + 34 * len(depts)), horizontal=True)
    fig.update_xaxes(tickformat=",.0f")
    return fig


def needs_chart(needs: dict[str, stats.NeedCount], labels: Labels) -> go.Figure | None:
    if not needs:
        return None
    names = [labels("hardship", h) for h in needs]
    fig = go.Figure()
    fig.add_bar(y=names, x=[n.warnings for n in needs.values()], name="未办结预警 / open warnings", orientation="h")
    fig.add_bar(y=names, x=[n.households for n in needs.values()], name="涉及户数 / households", orientation="h")
    fig = layout(fig, "需求清单：按困难类型 / Needs by hardship type", horizontal=True)
    fig.update_layout(barmode="group", height=max(260, 60 + 40 * len(names)))
    return fig


# --------------------------------------------------------------------------- tables and page
