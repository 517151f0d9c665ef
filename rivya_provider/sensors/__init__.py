"""Airflow sensors for Rivya."""
