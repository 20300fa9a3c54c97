-- Runs once, when the postgres service initializes its data directory (docker-entrypoint-initdb.d).
-- The Airflow metadata database (airflow/airflow) comes from POSTGRES_USER / POSTGRES_DB; the
-- tenant state store gets a database and a role of its own, as a production deployment would.
CREATE ROLE compute LOGIN PASSWORD 'compute';
CREATE DATABASE compute_state OWNER compute;
