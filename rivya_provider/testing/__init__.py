"""Testing helpers for users' own DAG tests (pytest plugin with emulator fixtures)."""
