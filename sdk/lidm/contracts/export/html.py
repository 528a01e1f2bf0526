"""A static, browsable catalogue: departments -> datasets -> fields with classification, protection, grants."""

from __future__ import annotations

from collections import defaultdict
from html import escape
from pathlib import Path

from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Contract

CSS = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:0;
color:#1d2733;background:#f6f7f9}
header{background:#12355b;color:#fff;padding:18px 28px;height:60px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}
nav{position:fixed;top:96px;bottom:0;width:250px;overflow:auto;background:#fff;border-right:1px solid #dde2e8;
padding:12px 0}
nav h3{font-size:13px;margin:14px 18px 4px;color:#53647a}nav a{display:block;padding:3px 18px 3px 26px;
color:#12355b;text-decoration:none;font-size:13px}nav a:hover{background:#eef3f9}
main{margin-left:270px;padding:10px 28px 60px}
section.dataset{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:16px 20px;margin:18px 0}
h2.dept{margin-top:30px;border-bottom:2px solid #12355b;padding-bottom:4px}
h3 code{font-size:15px;color:#53647a}
.meta span{display:inline-block;margin:0 14px 6px 0;font-size:13px;color:#53647a}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
th,td{border-bottom:1px solid #e6e9ee;padding:5px 8px;text-align:left;vertical-align:top}th{background:#f0f3f7}
.badge{border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.direct_identifier{background:#fde2e1;color:#9b1c1c}.quasi_identifier{background:#fff1d6;color:#8a5300}
.sensitive{background:#ece4fb;color:#5b2a9b}.plain{background:#e6f4ea;color:#1e6b34}
.key{background:#12355b;color:#fff}
.lvl-clear{color:#9b1c1c;font-weight:600}.lvl-masked{color:#8a5300}.lvl-token{color:#1e6b34}
"""


KEY_BADGE = " <span class='badge key'>key</span>"


def _dataset(c: Contract) -> str:
    rows = []
    for f in c.fields:
        values = ", ".join(
            f"{escape(v)}{' ' + escape(lbl) if lbl else ''}"
            for v, lbl in zip(f.enum or (), f.enum_labels or (None,) * len(f.enum or ()), strict=False)
        )
        checks = ", ".join(ch.value for ch in f.checks)
        rows.append(
            f"<tr><td><code>{escape(f.name)}</code>{KEY_BADGE if f.primary_key else ''}</td>"
            f"<td>{escape(f.business_name or '')}</td><td>{f.type.value}{' · ' + escape(f.unit) if f.unit else ''}</td>"
            f"<td>{'yes' if f.required else ''}</td>"
            f"<td><span class='badge {f.classification.value}'>{f.classification.value}</span></td>"
            f"<td>{', '.join(p.value for p in f.protection)}</td><td>{checks}{'; ' if checks and values else ''}"
            f"{values}</td></tr>"
        )
    grants = []
    for g in c.grants:
        levels = ", ".join(f"{escape(n)} <span class='lvl-{lv.value}'>{lv.value}</span>" for n, lv in g.fields.items())
        grants.append(
            f"<tr><td><code>{escape(g.consumer)}</code></td><td>{escape(g.purpose or '—')}</td>"
            f"<td>{g.rows.value}</td><td>{levels}</td></tr>"
        )
    return (
        f"<section class='dataset' id='{escape(c.id)}'><h3>{escape(c.title)} <code>{escape(c.id)}</code> "
        f"<small>v{escape(c.version)}</small></h3><p>{escape(c.description)}</p><div class='meta'>"
        f"<span>key: <b>{escape(', '.join(c.key))}</b></span><span>mode: <b>{c.update_mode.value}</b>"
        f"{' on ' + escape(c.watermark) if c.watermark else ''}</span><span>frequency: <b>{escape(c.frequency or '—')}"
        f"</b></span><span>freshness: <b>{escape(c.freshness or '—')}</b></span><span>table: <code>{escape(c.table)}"
        f"</code></span></div><table><tr><th>field</th><th>名称</th><th>type</th><th>required</th>"
        f"<th>classification</th><th>protection</th><th>checks / values</th></tr>{''.join(rows)}</table>"
        f"<h4>Grants ({len(c.grants)})</h4><table>"
        "<tr><th>consumer</th><th>purpose</th><th>rows</th><th>fields</th></tr>"
        f"{''.join(grants) or '<tr><td colspan=4>none</td></tr>'}</table></section>"
    )


def render(catalog: ContractCatalog) -> str:
    """The whole catalogue as one self-contained HTML page."""
    by_dept: dict[str, list[Contract]] = defaultdict(list)
    for c in catalog:
        by_dept[c.department].append(c)
    names = {}
    if catalog.consumers:
        names = {m.id: m.name for m in catalog.consumers.members.values()}
    nav, body = [], []
    fields = sum(len(c.fields) for c in catalog)
    grants = sum(len(c.grants) for c in catalog)
    for dept in sorted(by_dept):
        title = escape(names.get(dept, dept))
        nav.append(
            f"<h3>{title}</h3>" + "".join(f"<a href='#{escape(c.id)}'>{escape(c.title)}</a>" for c in by_dept[dept])
        )
        body.append(f"<h2 class='dept' id='dept-{escape(dept)}'>{title} <code>{escape(dept)}</code></h2>")
        body += [_dataset(c) for c in by_dept[dept]]
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>lidm contract catalogue</title>"
        f"<style>{CSS}</style></head><body><header><h1>数据共享目录 · lidm contract catalogue</h1>"
        f"<p>{len(by_dept)} departments · {len(catalog)} datasets · {fields} fields · {grants} grants</p></header>"
        f"<nav>{''.join(nav)}</nav><main>{''.join(body)}</main></body></html>"
    )


def write(catalog: ContractCatalog, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(render(catalog), "utf-8")
    return [path]
