"""Airflow-free client for the Rivya Public API v1: models, errors, sync and async clients."""
