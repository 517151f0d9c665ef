"""The provider metadata Airflow discovers must be true to the installed package."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

import pytest

from rivya_provider.get_provider_info import get_provider_info

DISTRIBUTION = "airflow-provider-rivya"


def _module_paths(info: dict[str, Any]) -> list[str]:
    modules: list[str] = []
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            modules.extend(entry["python-modules"])
    return modules


def test_package_name_is_the_installed_distribution() -> None:
    info = get_provider_info()
    dist = importlib.metadata.distribution(info["package-name"])
    assert dist.metadata["Name"] == DISTRIBUTION


def test_entry_point_is_registered_and_resolves_to_this_function() -> None:
    eps = importlib.metadata.entry_points(group="apache_airflow_provider")
    ours = [ep for ep in eps if ep.dist is not None and ep.dist.name == DISTRIBUTION]
    assert len(ours) == 1
    assert ours[0].load() is get_provider_info


def test_version_comes_from_the_package() -> None:
    import rivya_provider

    assert importlib.metadata.version(DISTRIBUTION) == rivya_provider.__version__
    assert get_provider_info()["versions"] == [rivya_provider.__version__]


def test_required_keys_present() -> None:
    info = get_provider_info()
    for key in (
        "package-name",
        "name",
        "description",
        "integrations",
        "hooks",
        "operators",
        "sensors",
        "triggers",
        "connection-types",
    ):
        assert key in info, key
    assert info["name"] == "Rivya"
    integration_names = {i["integration-name"] for i in info["integrations"]}
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            assert entry["integration-name"] in integration_names


@pytest.mark.parametrize("module", _module_paths(get_provider_info()))
def test_every_listed_module_imports(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize(
    "dotted", [c["hook-class-name"] for c in get_provider_info()["connection-types"]]
)
def test_every_named_class_exists(dotted: str) -> None:
    module_name, _, class_name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(cls, type)


def test_airflow_providers_manager_sees_the_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert DISTRIBUTION in providers
    assert providers[DISTRIBUTION].version == importlib.metadata.version(DISTRIBUTION)


def _bases() -> dict[str, type]:
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    return {
        "hooks": BaseHook,
        "operators": BaseOperator,
        "sensors": BaseSensorOperator,
        "triggers": BaseTrigger,
    }


@pytest.mark.parametrize("section", ["hooks", "operators", "sensors", "triggers"])
def test_every_listed_module_defines_a_class_of_its_section(section: str) -> None:
    base = _bases()[section]
    entries = get_provider_info()[section]
    assert entries, f"{section} is empty"
    for entry in entries:
        for module_name in entry["python-modules"]:
            module = importlib.import_module(module_name)
            defined = [
                obj
                for obj in vars(module).values()
                if isinstance(obj, type) and obj.__module__ == module_name and issubclass(obj, base)
            ]
            assert defined, f"{module_name} defines no {base.__name__}"


def test_providers_page_links_to_the_documentation_the_package_declares() -> None:
    # Without documentation-url, Admin -> Providers links to a non-existent apache docs page.
    from pathlib import Path

    import tomllib

    from rivya_provider.get_provider_info import get_provider_info

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert get_provider_info()["documentation-url"] == project["urls"]["Documentation"]
