"""The layer rules, read from the source: imports point down, never up (docs: DESIGN.md).

- ``api/`` knows HTTP and the Rivya contract, nothing of Airflow.
- ``emulator/`` is the other side of the contract: it never imports the client (``api/``) nor
  anything else of the provider but itself.
- Nothing imports upward: hooks never import operators/sensors/triggers; triggers never import
  operators or sensors; operators and sensors import each other only through public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rivya_provider"

# Layer -> imported prefixes it must never use (module-level or inside functions).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "api": (
        "airflow",
        "rivya_provider.hooks",
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.emulator",
        "rivya_provider.testing",
        "rivya_provider._compat",
    ),
    "emulator": (
        "airflow",
        "rivya_provider.api",
        "rivya_provider.hooks",
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.testing",
        "rivya_provider._compat",
    ),
    "hooks": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "triggers": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every absolute module a file imports (``from x import y`` yields ``x`` and ``x.y``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def violations(layer: str) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, module in imports_of(path):
            if any(module == p or module.startswith(p + ".") for p in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    assert violations(layer) == []


def test_the_rule_check_sees_a_violation(tmp_path: Path) -> None:
    # Guard against a check that cannot fail: an upward import, even inside a function, counts.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from airflow.sdk import BaseHook\n    import rivya_provider.api\n"
    )
    assert (2, "airflow.sdk") in imports_of(sample)
    assert (3, "rivya_provider.api") in imports_of(sample)
