"""DVC stage entry points: ``python -m stages.<name>``; the DAG lives in dvc.yaml."""
