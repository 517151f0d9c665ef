"""Airflow hooks: the ``rivya`` connection type."""
