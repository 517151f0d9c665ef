"""Airflow triggers for Rivya (async, GET-only polling)."""
