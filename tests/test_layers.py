"""The layer rules, read from the source: imports point down, never up (docs: DESIGN.md).

- ``api/`` knows HTTP and the Rivya contract, nothing of Airflow.
- ``emulator/`` is the other side of the contract: it never imports the client (``api/``) nor
  anything else of the provider but itself.
- Nothing imports upward: hooks never import operators/sensors/triggers; triggers never import
  operators, sensors or the task mixin; the shared modules under them (storage, error outcomes,
  the task mixin) never import an operator or sensor.
- Across folders only public names: nobody imports another folder's ``_private`` module or name.
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
        "rivya_provider.compat",
    ),
    "emulator": (
        "airflow",
        "rivya_provider.api",
        "rivya_provider.hooks",
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.testing",
        "rivya_provider.compat",
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
        "rivya_provider.generation_task",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "generation_task.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "storage.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "airflow_errors.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "batch.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "request_builder.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    # The contact sheet: text in, HTML out; it needs nothing of the provider's upper layers.
    "contact_sheet.py": (
        "airflow",
        "rivya_provider.api",
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.batch",
        "rivya_provider.storage",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    # The review helpers: text in, text out, below the operators (compat for HITL's timeout).
    "review.py": (
        "rivya_provider.api",
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.batch",
        "rivya_provider.storage",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    # Reuse across runs (skip_unchanged): the records and the rule, below the operators.
    "reuse.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.batch",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    # What the UI and downstream DAGs see (labels, link targets, Asset extras) and the links.
    "observability.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "lineage.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.hooks",
        "rivya_provider.testing",
        "rivya_provider.emulator",
    ),
    "links.py": (
        "rivya_provider.operators",
        "rivya_provider.sensors",
        "rivya_provider.triggers",
        "rivya_provider.generation_task",
        "rivya_provider.hooks",
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
    where = PACKAGE / layer
    for path in sorted(where.rglob("*.py") if where.is_dir() else [where]):
        for line, module in imports_of(path):
            if any(module == p or module.startswith(p + ".") for p in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    assert violations(layer) == []


def private_imports_across_folders(root: Path) -> list[str]:
    """Imports of a ``_private`` module or name that lives in another folder of the package."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        folder = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
        for line, module in imports_of(path):
            parts = module.split(".")
            if parts[0] != root.name:
                continue
            for index, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:index])
                    where = f"{path.relative_to(root.parent)}:{line}"
                    outside = folder != owner and not folder.startswith(owner + ".")
                    if outside and not any(b.startswith(f"{where} ") for b in bad):
                        bad.append(f"{where} imports {module}")
                    break
    return bad


def test_across_folders_only_public_names_are_imported() -> None:
    assert private_imports_across_folders(PACKAGE) == []


def test_the_private_name_check_sees_a_violation(tmp_path: Path) -> None:
    package = tmp_path / "rivya_provider"
    (package / "sensors").mkdir(parents=True)
    (package / "operators").mkdir()
    (package / "operators" / "_shared.py").write_text("def _helper(): ...\n")
    (package / "operators" / "generate.py").write_text(
        "from rivya_provider.operators._shared import _helper\n"
    )
    (package / "sensors" / "generation.py").write_text(
        "def poke():\n    from rivya_provider.operators._shared import _helper\n"
    )
    assert private_imports_across_folders(package) == [
        "rivya_provider/sensors/generation.py:2 imports rivya_provider.operators._shared"
    ]


def test_the_rule_check_sees_a_violation(tmp_path: Path) -> None:
    # Guard against a check that cannot fail: an upward import, even inside a function, counts.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from airflow.sdk import BaseHook\n    import rivya_provider.api\n"
    )
    assert (2, "airflow.sdk") in imports_of(sample)
    assert (3, "rivya_provider.api") in imports_of(sample)


def test_a_file_over_400_lines_says_why_at_its_top() -> None:
    long_without_reason = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if len(path.read_text().splitlines()) > 400
        and not path.read_text().startswith("# Over 400 lines: ")
    ]
    assert long_without_reason == []
