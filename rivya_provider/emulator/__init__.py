"""Local Rivya API emulator (Airflow-free; never imports ``rivya_provider.api``)."""
