#!/usr/bin/env bash
# Create or update .venv with the provider installed editable (emulator extra) plus the `dev`
# dependency group of pyproject.toml.
# Idempotent: when .venv already matches pyproject.toml it returns in well under a second.
# Needs only python3 (3.10+) and access to the package registry. Prefers uv, installing it
# with pip when it is not on PATH, and falls back to plain venv + pip when uv cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.rivya-installed"
want="$("$PYTHON" - <<'PY'
import hashlib, pathlib
print(hashlib.sha256(pathlib.Path("pyproject.toml").read_bytes()).hexdigest())
PY
)"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

"$PYTHON" - <<'PY' || { echo "bootstrap: Python 3.10+ is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

find_uv() {
  if command -v uv >/dev/null 2>&1; then echo uv; return 0; fi
  if "$PYTHON" -m uv --version >/dev/null 2>&1; then echo "$PYTHON -m uv"; return 0; fi
  return 1
}

UV="$(find_uv || true)"
if [ -z "$UV" ]; then
  echo "bootstrap: uv not found, installing it with pip (user site)" >&2
  "$PYTHON" -m pip install --quiet --user uv >/dev/null 2>&1 \
    || "$PYTHON" -m pip install --quiet --user --break-system-packages uv >/dev/null 2>&1 \
    || true
  UV="$(find_uv || true)"
fi

if [ -n "$UV" ]; then
  echo "bootstrap: installing into $VENV with uv" >&2
  [ -x "$VENV/bin/python" ] || $UV venv --quiet --python "$PYTHON" "$VENV"
  $UV pip install --quiet --python "$VENV/bin/python" -e ".[emulator]" --group dev
else
  echo "bootstrap: uv unavailable, falling back to venv + pip" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # pip reads dependency groups (--group) from 25.1 on.
  "$VENV/bin/python" -m pip install --quiet --upgrade "pip>=25.1"
  "$VENV/bin/python" -m pip install --quiet -e ".[emulator]" --group dev
fi
echo "$want" > "$STAMP"
