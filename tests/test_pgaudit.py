"""Consumers' reads of their views are audited by PostgreSQL itself (pgaudit), and summarised by `lidm audit reads`.

Needs the real PostgreSQL server with pgaudit preloaded (`make services` installs Debian's postgresql-15-pgaudit
and sets shared_preload_libraries). A superuser creates the extension and sets pgaudit.role on a throwaway
database, `grants apply` gives the auditor role SELECT on every view, a consumer's login reads its view, and the
server log then holds the read, which the summary counts without printing the statement.
"""

from __future__ import annotations

import glob
import secrets
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_DSN, _throwaway_pg_database
from lidm_samples.demo import demo_settings, run_demo
from typer.testing import CliRunner

from lidm import cli
from lidm.central import reads
from lidm.central.grants import AUDITOR, apply, review, role_name
from lidm.contracts import load_catalog
from lidm.keys import load_keyring

pytestmark = pytest.mark.postgres


def _server_log() -> str:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        current = admin.execute("SELECT pg_current_logfile()").fetchone()[0]
        data = admin.execute("SHOW data_directory").fetchone()[0]
    if current:
        return current if current.startswith("/") else f"{data}/{current}"
    found = sorted(glob.glob("/var/log/postgresql/postgresql-*-main.log"))
    assert found, "no PostgreSQL server log: the pgaudit lines go to the server's log"
    return found[-1]


def test_a_consumers_reads_are_logged_by_the_server_and_summarised(tmp_path: Path, monkeypatch) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        assert "pgaudit" in admin.execute("SHOW shared_preload_libraries").fetchone()[0], "run `make services`"
    user = f"lidm_t_reader_{secrets.token_hex(4)}"
    with _throwaway_pg_database() as url:
        database = url.rsplit("/", 1)[1]
        home = tmp_path / "city"
        run_demo(home, size=200, bad=0, central_url=url, feeds=("civil_affairs.low_income_roster",))
        engine = sa.create_engine(url)
        keyring = load_keyring(demo_settings(home, url))
        try:
            catalog = load_catalog()
            notes = review(catalog, engine).notes
            assert any("consumers' reads are not audited" in n and "CREATE EXTENSION pgaudit" in n for n in notes)
            db_admin = PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={database}")
            with psycopg.connect(db_admin, autocommit=True) as admin:
                admin.execute("CREATE EXTENSION pgaudit")
                admin.execute(f"ALTER DATABASE \"{database}\" SET pgaudit.role = '{AUDITOR}'")
                admin.execute(f'CREATE ROLE "{user}" LOGIN')
            apply(engine, catalog, keyring=keyring)
            assert review(catalog, engine).statements == []
            with psycopg.connect(db_admin, autocommit=True) as admin:
                admin.execute(f'GRANT "{role_name("education")}" TO "{user}"')
                held = admin.execute(
                    "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = %s "
                    "AND table_schema = 'lidm_education' AND privilege_type = 'SELECT'",
                    (AUDITOR,),
                ).fetchone()[0]
            assert held > 0
            secret = "430102199001011234"  # a value the consumer types into its query: never printed back
            reader = f"host=127.0.0.1 port=5432 user={user} dbname={database}"
            with psycopg.connect(reader, autocommit=True) as conn:
                for _ in range(3):
                    conn.execute(
                        "SELECT count(*) FROM lidm_education.civil_affairs_low_income_roster "
                        f"WHERE id_number_token <> '{secret}'"
                    ).fetchone()
            log = _server_log()
            deadline = time.monotonic() + 30
            while True:  # the server writes its log on its own schedule: wait for the lines, not a fixed time
                found = [r for r in reads.summarise([Path(log)], database) if r.user == user]
                if (found and found[0].reads >= 3) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert [(r.consumer, r.view, r.reads) for r in found] == [
                ("education", "civil_affairs_low_income_roster", 3)
            ]
            settings = demo_settings(home, url).model_copy(update={"pgaudit_log": log})
            monkeypatch.setattr(cli, "get_settings", lambda: settings)
            monkeypatch.setattr(cli.console, "width", 250)
            out = CliRunner().invoke(cli.app, ["audit", "reads"])
            assert out.exit_code == 0 and user in out.output and "civil_affairs_low_income_roster" in out.output
            assert secret not in out.output, "the statement text stays in the server log"
        finally:
            engine.dispose()
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (user,))
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{user}"')


def test_the_parser_reads_pgaudit_lines_and_nothing_else() -> None:
    lines = [
        "2026-12-04 10:00:01.123 UTC [42] alice@central LOG:  AUDIT: OBJECT,1,1,READ,SELECT,VIEW,"
        "lidm_civil_affairs__furong.platform_warning,\"SELECT * FROM x WHERE id = '1'\",<not logged>",
        "2026-12-04 10:00:02.000 UTC [42] alice@central LOG:  AUDIT: OBJECT,2,1,READ,SELECT,VIEW,"
        'lidm_civil_affairs__furong.platform_warning,"SELECT 1",<not logged>',
        '2026-12-04 10:00:03.000 UTC [43] bob@other LOG:  AUDIT: OBJECT,1,1,READ,SELECT,VIEW,lidm_x.y,"q",<none>',
        '2026-12-04 10:00:04.000 UTC [44] eve@central LOG:  AUDIT: OBJECT,1,1,WRITE,INSERT,TABLE,lidm_x.y,"q",<none>',
        '2026-12-04 10:00:05.000 UTC [45] eve@central LOG:  AUDIT: OBJECT,1,1,READ,SELECT,TABLE,public.t,"q",<none>',
        "2026-12-04 10:00:06.000 UTC [46] eve@central LOG:  statement: SELECT 1",
    ]
    got = list(reads.parse(lines, "central"))
    assert [(r.user, r.schema, r.view) for r in got] == [
        ("alice", "lidm_civil_affairs__furong", "platform_warning")
    ] * 2
    (summary,) = reads.summarise_reads(got)
    assert (summary.consumer, summary.reads, summary.first, summary.last) == (
        "civil_affairs.furong",
        2,
        "2026-12-04 10:00:01",
        "2026-12-04 10:00:02",
    )
