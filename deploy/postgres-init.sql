-- First start of the postgres container (docker-entrypoint-initdb.d): two databases, two owners.
--   airflow  Airflow's metadata database, owned by role airflow
--   central  the gateway's central database, owned by role lidm (the DAG tasks migrate and load it)
-- Passwords come from the container's environment (psql's \getenv, PostgreSQL 15+), never from this file.

\set ON_ERROR_STOP on
\set airflow_password ''
\set lidm_password ''
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv lidm_password CENTRAL_DB_PASSWORD

SELECT :'airflow_password' <> '' AND :'lidm_password' <> '' AS passwords_set \gset
\if :passwords_set
\else
  \echo 'AIRFLOW_DB_PASSWORD and CENTRAL_DB_PASSWORD must be set in the postgres service environment'
  SELECT 1 / 0;
\endif

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE lidm LOGIN PASSWORD :'lidm_password';

CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE central OWNER lidm ENCODING 'UTF8' TEMPLATE template0;

-- Nobody but the owner connects by default; consumers get their own roles and grants later.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE central FROM PUBLIC;

\connect central
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO lidm;
