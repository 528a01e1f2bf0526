"""The `lidm demo` and `lidm sample` commands: the synthetic city, plugged into the gateway's CLI.

lidm-samples is a distribution of its own: the gateway's SDK ships no synthetic data. Installed beside it, it
registers these commands through the ``lidm.commands`` entry point (`register`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lidm.cli.common import console, current_settings, fail
from lidm.cli.feeds import print_results, run_with_progress
from lidm.cli.monitor import print_monitor
from lidm.errors import LidmError
from lidm.redact import redact_url


def register(app: typer.Typer) -> None:
    """Put the demo and sample commands on the `lidm` app."""
    app.command()(demo)
    app.command()(sample)


def demo(
    size: Annotated[int, typer.Option(help="People in the synthetic population.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic sources.")] = 20261127,
    bad: Annotated[int, typer.Option(help="Deliberately bad rows per source.")] = 5,
    home: Annotated[Path, typer.Option(help="Folder for demo sources, keys and the embedded database.")] = Path(
        ".lidm/demo"
    ),
) -> None:
    """Generate one synthetic city's department sources and run every feed into the embedded database."""
    from lidm_samples.demo import run_demo

    settings = current_settings()
    try:
        sources, results = run_with_progress(
            lambda tick: run_demo(home, size=size, seed=seed, bad=bad, central_url=settings.central_url, progress=tick)
        )
    except LidmError as exc:
        fail(exc)
    kinds = sorted({w.kind.split("/")[0] for w in sources.written})
    console.print(
        f"Sources: {len(sources.written)} datasets ({', '.join(kinds)}), "
        f"{sum(w.rows for w in sources.written):,} rows, of which "
        f"{sum(sum(w.bad_kinds.values()) for w in sources.written):,} deliberately faulty"
    )
    print_results(results)
    console.print(f"Central database: {redact_url(settings.central_url or str(home / 'central.db'))}")
    _demo_loop(home, settings.central_url, seed)


def _demo_loop(home: Path, central_url: str | None, seed: int) -> None:
    """The monitoring loop on the demo city, for the day the city was generated for."""
    from lidm_samples.demo import demo_settings, run_loop
    from lidm_samples.people import REFERENCE_DATE

    try:
        loop = run_loop(demo_settings(home, central_url), as_of=REFERENCE_DATE, seed=seed)
    except LidmError as exc:
        fail(exc)
    print_monitor(loop.monitor)
    pushed = [p for p in loop.pushes if p.status == "pushed"]
    console.print(
        f"Pushed {sum(p.warnings for p in pushed):,} warnings to {len(pushed)} offices "
        f"of {len({p.department for p in pushed})} departments (city, county and street); they answered "
        f"{sum(r.acknowledged for r in loop.responses):,} acknowledgements and "
        f"{sum(sum(r.outcomes.values()) for r in loop.responses):,} dispositions"
    )
    totals = loop.collected.totals()
    console.print("Dispositions taken in: " + ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items()) if v))
    console.print("Needs list (需求清单): " + ", ".join(f"{k} {v:,}" for k, v in loop.needs.items()))
    console.print(f"Report (happiness list, needs, statistics): {loop.report}")
    console.print(f"Monthly statistical tables (民政统计月报): {loop.workbook}")


def sample(
    size: Annotated[int, typer.Option(help="People in the synthetic city.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed always writes the same sources.")] = 20261127,
    bad: Annotated[int, typer.Option(help="Faulty rows per source, spread over the source's fault kinds.")] = 5,
    out: Annotated[Path, typer.Option(help="Folder for file sources and connections.json.")] = Path(".lidm/sources"),
    dataset: Annotated[list[str] | None, typer.Option(help="Only these datasets (repeatable).")] = None,
    mariadb: Annotated[
        str | None,
        typer.Option(
            help="ODBC connection of a MariaDB server for the sources declared there, as everywhere else: "
            "odbc:DRIVER={MariaDB Unicode};SERVER=…;PORT=…;UID=…;PWD=… (the odbc: prefix may be left out)."
        ),
    ] = None,
    postgres: Annotated[str | None, typer.Option(help="SQLAlchemy URL of a PostgreSQL server (any database).")] = None,
    sftp: Annotated[
        str | None, typer.Option(help="sftp://user@host:port/dir?key_file=…&known_hosts=… for drops.")
    ] = None,
) -> None:
    """Write deterministic synthetic sources for every dataset (files by default, or the real servers): the
    hand-written ones, and those declared beside their adapters (`<dataset>.sample.yaml`)."""
    from lidm_samples.catalog import save_connections, write_sources
    from lidm_samples.sources import Servers
    from lidm_samples.world import build_world

    try:
        world = build_world(size, seed)
        out.mkdir(parents=True, exist_ok=True)
        servers = Servers(out, mariadb_odbc=mariadb, postgres_url=postgres, sftp_url=sftp)
        report = write_sources(
            world, servers, bad=bad, datasets=dataset, contracts_dir=current_settings().contracts_dir
        )
    except LidmError as exc:
        fail(exc)
    save_connections(report, out / "connections.json")
    table = Table(title=f"Sample sources (size {size:,}, seed {seed})")
    for col in ("dataset", "kind", "where", "rows", "faulty rows"):
        table.add_column(col, justify="right" if col in ("rows", "faulty rows") else "left")
    for w in report.written:
        faults = ", ".join(f"{k} {n}" for k, n in w.bad_kinds.items()) or "-"
        table.add_row(w.dataset, w.kind, w.where, f"{w.rows:,}", faults)
    console.print(table)
    console.print(
        f"Connections written to {out / 'connections.json'}; run feeds with "
        f'LIDM_CONNECTIONS="$(cat {out / "connections.json"})" or `lidm adapter verify NAME --connections '
        f"{out / 'connections.json'}`."
    )
