-- The sweep's shared Optuna study storage (docs/sweep.md): a database and a user of its own, so
-- sweep workers (compose service sweep-worker, deploy/kubernetes/sweep-workers.yaml) hold
-- neither the superuser's (mlflow's) password nor any right on MLflow's databases. The password
-- comes from the server's environment (OPTUNA_DB_PASSWORD, read with psql 15's \getenv), never
-- from this file. Runs on the first start only (an empty data volume); on an existing volume,
-- run it once by hand: psql -U mlflow -d mlflow -f 20-optuna.sql (with OPTUNA_DB_PASSWORD set).
\getenv optuna_password OPTUNA_DB_PASSWORD
\if :{?optuna_password}
\else
\warn 'OPTUNA_DB_PASSWORD is not set: cannot create the optuna user'
\endif
-- Left undefined, :'optuna_password' is not substituted and the statement fails (ON_ERROR_STOP).
CREATE ROLE optuna LOGIN PASSWORD :'optuna_password';
-- The owner: Optuna creates its tables in the public schema, which PostgreSQL 15 no longer
-- opens to every user.
CREATE DATABASE optuna OWNER optuna;
-- Each database open to its owner (and the superuser) only: optuna cannot connect to MLflow's.
REVOKE ALL ON DATABASE optuna FROM PUBLIC;
REVOKE CONNECT ON DATABASE mlflow FROM PUBLIC;
REVOKE CONNECT ON DATABASE mlflow_auth FROM PUBLIC;
