#!/usr/bin/env bash
# `make mutation`: mutation testing of api/, operators/, triggers/ and sensors/ with mutmut 3
# ([tool.mutmut] in pyproject.toml), then a score summary per module and overall:
#   score = (killed + timeout) / total.
# Runs from scratch (removes ./mutants) unless MUTATION_INCREMENTAL=1: mutmut keeps the verdict
# of a mutant whose function did not change, so a survivor is not retested after the tests
# improved. Arguments go to `mutmut run` (mutant names or globs, e.g. 'rivya_provider.api.polling*').
# MUTATION_JOBS (default: all cores) and MUTATION_NICE (default 10) set the parallelism and the
# niceness. The summary is also written to mutants/mutation-summary.txt, the surviving mutants'
# names to mutants/survivors.txt (`.venv/bin/mutmut show <name>` shows one).
set -euo pipefail
cd "$(dirname "$0")/.."

MUTMUT_VERSION=3.8.1
PY=.venv/bin/python
[ -x "$PY" ] || ./scripts/bootstrap.sh

if [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("mutmut"))' 2>/dev/null)" != "$MUTMUT_VERSION" ]; then
  echo "mutation: installing mutmut==$MUTMUT_VERSION into .venv" >&2
  if command -v uv >/dev/null 2>&1; then
    uv pip install --quiet --python "$PY" "mutmut==$MUTMUT_VERSION"
  elif python3 -m uv --version >/dev/null 2>&1; then
    python3 -m uv pip install --quiet --python "$PY" "mutmut==$MUTMUT_VERSION"
  else
    "$PY" -m pip install --quiet "mutmut==$MUTMUT_VERSION"
  fi
fi

[ "${MUTATION_INCREMENTAL:-0}" = 1 ] || rm -rf mutants
mkdir -p mutants

start=$(date +%s)
# mutmut redraws a progress line with \r; the full output goes to mutants/mutmut-run.log.
set +e
nice -n "${MUTATION_NICE:-10}" .venv/bin/mutmut run --max-children "${MUTATION_JOBS:-$(nproc)}" "$@" \
  > mutants/mutmut-run.log 2>&1
status=$?
set -e
elapsed=$(( $(date +%s) - start ))
tr '\r' '\n' < mutants/mutmut-run.log | grep -v -E '^\s*$|^\S+ (Generating mutants|Running stats|Running clean tests|Running forced fail test|Listing all tests)\s*$' \
  | tail -n "$([ "$status" -eq 0 ] && echo 3 || echo 40)"
if [ "$status" -ne 0 ]; then
  echo "mutation: mutmut run failed (exit $status); see mutants/mutmut-run.log" >&2
  exit "$status"
fi
.venv/bin/mutmut export-cicd-stats >/dev/null

ELAPSED="$elapsed" "$PY" - <<'PY' | tee mutants/mutation-summary.txt
import json, os
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code  # mutmut's own exit-code -> verdict table

cols = ["killed", "survived", "timeout", "no tests", "other"]
rows, survivors = {}, []
for meta in sorted(Path("mutants").rglob("*.py.meta")):
    module = str(meta.relative_to("mutants"))[: -len(".meta")]
    counts = Counter()
    for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        status = status_by_exit_code[code]
        counts[status if status in cols else "other"] += 1
        if status == "survived":
            survivors.append(name)
    if counts:
        rows[module] = counts

def line(label, c):
    total = sum(c.values())
    score = 100 * (c["killed"] + c["timeout"]) / total if total else 0.0
    return f"{label:<42}" + "".join(f"{c[k]:>10}" for k in cols) + f"{total:>8}{score:>8.1f}%"

print(f"{'module':<42}" + "".join(f"{k:>10}" for k in cols) + f"{'total':>8}{'score':>9}")
for module, counts in rows.items():
    print(line(module, counts))
print(line("OVERALL", sum(rows.values(), Counter())))
print(f"score = (killed + timeout) / total; 'other' = suspicious, segfault, skipped, not checked")
print(f"wall time {int(os.environ['ELAPSED']) // 60} min {int(os.environ['ELAPSED']) % 60} s")
Path("mutants/survivors.txt").write_text("".join(f"{n}\n" for n in survivors))
PY
