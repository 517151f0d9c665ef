#!/usr/bin/env bash
# Part of `make test-compat`: the newest Airflow on the oldest and newest supported Python
# (3.10 and 3.13): build .venv-py/<version>, import every module of rivya_provider, and run one
# example DAG with dag.test() against the emulator. An interpreter is looked for as a script on
# a fresh machine would: python3.X on PATH, then pyenv's versions ($PYENV_ROOT, default
# ~/.pyenv). One that is absent is skipped, and the output says so.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"

find_python() {
  # The first candidate that runs: PATH (a pyenv shim there may fail for an unselected
  # version), then each pyenv version directory.
  local minor="$1" candidate
  for candidate in "$(command -v "python$minor" || true)" \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$minor".*/bin/"python$minor"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

summary=()
for minor in 3.10 3.13; do
  python="$(find_python "$minor" || true)"
  if [ -z "$python" ]; then
    summary+=("Python $minor: SKIPPED, no interpreter found (PATH, pyenv)")
    continue
  fi
  venv=".venv-py/$minor"
  want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) $python"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    "$UV" venv --quiet --python "$python" "$venv"
    "$UV" pip install --quiet --python "$venv/bin/python" -e ".[emulator]" --group test
    echo "$want" > "$venv/.stamp"
  fi
  echo "=== Python $minor ($python): import every module ==="
  "$venv/bin/python" - <<'PY'
import importlib, importlib.util, pkgutil, sys
import rivya_provider

names = sorted(m.name for m in pkgutil.walk_packages(rivya_provider.__path__, "rivya_provider."))
for name in names:
    if name.endswith("__main__"):
        continue
    # The OpenLineage module is imported only by that optional provider (extra "openlineage").
    if name == "rivya_provider.lineage" and importlib.util.find_spec("openlineage") is None:
        continue
    importlib.import_module(name)
import airflow
print(f"imported {len(names)} modules on Python {sys.version.split()[0]}, Airflow {airflow.__version__}")
PY
  echo "=== Python $minor: example_rivya_generate with dag.test() ==="
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/examples/test_examples.py \
    -k "test_generate_example_stores_one_image or test_every_example_parses"
  summary+=("Python $minor: passed ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))")
done
printf '%s\n' "${summary[@]}"
