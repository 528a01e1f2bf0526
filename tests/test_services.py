"""Smoke tests proving the service fixtures in conftest.py are real and behave as the gateway expects."""

from __future__ import annotations

import contextlib
import os

import paramiko
import psycopg
import pyodbc
import pytest
import sqlalchemy as sa
from arrow_odbc import read_arrow_batches_from_odbc

NAME = "王小明"


def _ssh_client(known_hosts) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _connect(client: paramiko.SSHClient, server) -> None:
    client.connect(
        server.host,
        port=server.port,
        username=server.username,
        key_filename=str(server.client_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )


# --------------------------------------------------------------------------- sftp


@pytest.mark.sftp
def test_sftp_lists_and_reads_with_pinned_host_key(sftp_server):
    user = sftp_server.home.owner()
    target = sftp_server.home / "outbox" / "smoke.csv"
    target.write_text(f"id,name\n1,{NAME}\n", encoding="utf-8")
    stat = (sftp_server.home / "outbox").stat()
    os.chown(target, stat.st_uid, stat.st_gid)
    assert user == sftp_server.username

    client = _ssh_client(sftp_server.known_hosts)
    try:
        _connect(client, sftp_server)
        sftp = client.open_sftp()
        assert "smoke.csv" in sftp.listdir("outbox")
        with sftp.open(f"{sftp_server.home}/outbox/smoke.csv") as fh:
            assert fh.read().decode("utf-8") == f"id,name\n1,{NAME}\n"
    finally:
        client.close()
        target.unlink()

    url = sftp_server.url("outbox/smoke.csv")
    assert url.startswith(f"sftp://lidmdrop@127.0.0.1:{sftp_server.port}/outbox/smoke.csv?key_file=")


@pytest.mark.sftp
def test_sftp_changed_host_key_is_rejected(sftp_server):
    client = _ssh_client(sftp_server.wrong_known_hosts)
    with pytest.raises(paramiko.BadHostKeyException):
        _connect(client, sftp_server)
    client.close()


@pytest.mark.sftp
def test_sftp_unknown_host_is_rejected(sftp_server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    client = _ssh_client(empty)
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts") as info:
        _connect(client, sftp_server)
    assert not isinstance(info.value, paramiko.BadHostKeyException)
    client.close()


# --------------------------------------------------------------------------- mariadb


@pytest.mark.mariadb
def test_mariadb_pyodbc_round_trips_chinese(mariadb_odbc):
    with contextlib.closing(pyodbc.connect(mariadb_odbc.odbc, autocommit=True)) as conn:
        conn.execute("CREATE TABLE people_raw (id INT PRIMARY KEY, name VARCHAR(50))")
        conn.execute("INSERT INTO people_raw VALUES (?, ?)", 1, NAME)
        assert conn.execute("SELECT name FROM people_raw WHERE id = 1").fetchval() == NAME
        assert conn.execute("SELECT DATABASE()").fetchval() == mariadb_odbc.database


@pytest.mark.mariadb
def test_mariadb_arrow_odbc_reads_batches(mariadb_odbc):
    with contextlib.closing(pyodbc.connect(mariadb_odbc.odbc, autocommit=True)) as conn:
        conn.execute("CREATE TABLE people_arrow (id INT PRIMARY KEY, name VARCHAR(50))")
        conn.cursor().executemany("INSERT INTO people_arrow VALUES (?, ?)", [(i, f"{NAME}{i}") for i in range(250)])
    reader = read_arrow_batches_from_odbc(
        "SELECT id, name FROM people_arrow ORDER BY id", connection_string=mariadb_odbc.odbc, batch_size=100
    )
    batches = list(reader)
    assert sum(b.num_rows for b in batches) == 250
    assert len(batches) == 3
    assert batches[0].column("name")[0].as_py() == f"{NAME}0"


@pytest.mark.mariadb
def test_mariadb_sqlalchemy_url_works(mariadb_odbc):
    engine = sa.create_engine(mariadb_odbc.sqlalchemy_url)
    meta = sa.MetaData()
    table = sa.Table("people_sa", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": 1, "name": NAME}])
        with engine.connect() as conn:
            assert conn.execute(sa.select(table.c.name)).scalar_one() == NAME
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- postgres


def _libpq_url(sqlalchemy_url: str) -> str:
    return sa.make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.postgres
def test_postgres_copy_into_session_database(pg_url):
    rows = [(1, NAME), (2, "李四")]
    with psycopg.connect(_libpq_url(pg_url)) as conn:
        conn.execute("CREATE TABLE people_copy (id int PRIMARY KEY, name text)")
        with conn.cursor() as cur:
            with cur.copy("COPY people_copy (id, name) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            assert cur.execute("SELECT id, name FROM people_copy ORDER BY id").fetchall() == rows


@pytest.mark.postgres
def test_postgres_clean_database_is_separate_and_empty(pg_url, pg_clean_url):
    assert pg_clean_url != pg_url
    engine = sa.create_engine(pg_clean_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
