-- First start of the postgres container (docker-entrypoint-initdb.d): two databases, two owners.
--   airflow  Airflow's metadata database, owned by role airflow
--   central  the gateway's central database, owned by role lidm_owner (airflow-init migrates it and applies
--            the grants as the owner); the DAG tasks log in as lidm_loader, whose privileges
--            `lidm grants apply` sets (README: Deployment: three roles)
-- Passwords come from the container's environment (psql's \getenv, PostgreSQL 15+), never from this file.

\set ON_ERROR_STOP on
\set airflow_password ''
\set lidm_password ''
\set owner_password ''
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv lidm_password CENTRAL_DB_PASSWORD
\getenv owner_password CENTRAL_OWNER_PASSWORD

SELECT :'airflow_password' <> '' AND :'lidm_password' <> '' AND :'owner_password' <> '' AS passwords_set \gset
\if :passwords_set
\else
  \echo 'AIRFLOW_DB_PASSWORD, CENTRAL_DB_PASSWORD and CENTRAL_OWNER_PASSWORD must be set in the postgres service environment'
  SELECT 1 / 0;
\endif

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
-- The owner makes the consumer roles (CREATEROLE): an administrator's role, never the service's.
CREATE ROLE lidm_owner LOGIN CREATEROLE PASSWORD :'owner_password';
-- The service's role: no attribute; `lidm grants apply` gives it exactly what loading needs.
CREATE ROLE lidm_loader LOGIN PASSWORD :'lidm_password';

CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE central OWNER lidm_owner ENCODING 'UTF8' TEMPLATE template0;

-- Nobody but the owner connects by default; consumers get their own roles and grants later.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE central FROM PUBLIC;

\connect central
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO lidm_owner;
