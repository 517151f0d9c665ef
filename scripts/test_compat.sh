#!/usr/bin/env bash
# `make test-compat`: for every entry of the Airflow matrix (constraints/airflow-*.txt), build
# .venv-compat/<version> from that entry's committed constraints, then run
#   1. the test suite without the real-scheduler end-to-end tests (tests/e2e), examples included
#      (each example runs with dag.test() against the emulator);
#   2. the approval example on a real Airflow (api-server, scheduler, triggerer, dag-processor),
#      answered through the REST API (tests/e2e/test_approval_real_airflow.py): on 3.1 and 3.2
#      dag.test() cannot answer a human-in-the-loop task;
#   3. the CLI as a user would (scripts/compat_cli_check.py): `make demo`, no import errors in
#      dags_examples/, `airflow dags test` of the reference and marketing examples.
# Arguments restrict it to some versions: scripts/test_compat.sh 3.1.0 3.2.2
# Reuses a venv whose constraints and pyproject.toml did not change (a stamp, like bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
[ -x "$UV" ] || { ./scripts/bootstrap.sh; UV="$(command -v uv || echo "$HOME/.local/bin/uv")"; }

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  for file in constraints/airflow-*.txt; do
    v="${file#constraints/airflow-}"; versions+=("${v%.txt}")
  done
fi

summary=()
for version in "${versions[@]}"; do
  constraints="constraints/airflow-$version.txt"
  [ -f "$constraints" ] || { echo "test-compat: no $constraints" >&2; exit 2; }
  venv=".venv-compat/$version"
  want="$(cat "$constraints" pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
    echo "test-compat: building $venv" >&2
    rm -rf "$venv"
    "$UV" venv --quiet --python "$PYTHON" "$venv"
    "$UV" pip install --quiet --python "$venv/bin/python" -c "$constraints" \
      -e ".[emulator]" --group test
    echo "$want" > "$venv/.stamp"
  fi
  installed="$("$venv/bin/python" -c 'import airflow; print(airflow.__version__)')"
  [ "$installed" = "$version" ] || { echo "test-compat: $venv has Airflow $installed" >&2; exit 1; }

  echo "=== Airflow $version: test suite (without tests/e2e) ==="
  start=$SECONDS
  "$venv/bin/python" -m pytest -q -p no:cacheprovider --ignore=tests/e2e
  echo "=== Airflow $version: the approval example on a real Airflow ==="
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/e2e/test_approval_real_airflow.py
  echo "=== Airflow $version: example DAGs through the airflow CLI ==="
  "$venv/bin/python" scripts/compat_cli_check.py
  summary+=("Airflow $version: passed in $((SECONDS - start)) s")
done
printf '%s\n' "${summary[@]}"
