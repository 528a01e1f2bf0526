#!/usr/bin/env bash
# Makes sure the real services the tests use are installed and running: PostgreSQL, MariaDB,
# unixODBC with the MariaDB ODBC driver, OpenSSH's sshd binary (the tests start their own sshd), and
# Chromium with its driver for the browser test of the Airflow plugin.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v odbcinst >/dev/null 2>&1 || need+=(unixodbc)
[ -f /usr/include/sql.h ] || need+=(unixodbc-dev)
odbcinst -q -d 2>/dev/null | grep -q 'MariaDB' || need+=(odbc-mariadb)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
# The Feeds page is tested in Debian's headless Chromium (Selenium drives it through chromium-driver);
# the CJK fonts make the Chinese dataset names render in its screenshot.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)
# pgaudit logs consumers' reads of their views (lidm grants apply names the auditor role; issue 15).
pgver=$(ls /etc/postgresql 2>/dev/null | head -n1)
if [ -n "$pgver" ] && [ ! -f "/usr/share/postgresql/$pgver/extension/pgaudit.control" ]; then
  need+=("postgresql-$pgver-pgaudit")
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "services: installing ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! mariadb-admin -uroot -h127.0.0.1 status >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
# pgaudit must be preloaded: set once (postgresql.auto.conf), then one restart.
pgver=$(ls /etc/postgresql | head -n1)
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
if ! psql -h 127.0.0.1 -U postgres -Atc "SHOW shared_preload_libraries" | grep -q pgaudit; then
  echo "services: preloading pgaudit in PostgreSQL (one restart)"
  psql -h 127.0.0.1 -U postgres -qc "ALTER SYSTEM SET shared_preload_libraries = 'pgaudit'"
  as_root pg_ctlcluster --skip-systemctl-redirect "$pgver" main restart
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && mariadb-admin -uroot -h127.0.0.1 status >/dev/null 2>&1 && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432
mariadb-admin -uroot -h127.0.0.1 ping
as_root mkdir -p /run/sshd
echo "services: ODBC drivers: $(odbcinst -q -d | tr '\n' ' ')"
