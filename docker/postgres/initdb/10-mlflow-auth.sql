-- MLflow's basic-auth app keeps its users and grants in a database of its own (database_uri
-- in docker/mlflow/basic_auth.ini); the tracking store uses POSTGRES_DB (mlflow).
CREATE DATABASE mlflow_auth;
