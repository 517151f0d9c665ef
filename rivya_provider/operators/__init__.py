"""Airflow operators for Rivya."""
