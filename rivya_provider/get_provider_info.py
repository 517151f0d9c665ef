"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Keep this module free of imports beyond the standard library: Airflow calls it while it
discovers providers, often in processes that never use Rivya.
"""

from __future__ import annotations

from typing import Any

from rivya_provider import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ProvidersManager expects."""
    return {
        "package-name": "airflow-provider-rivya",
        "name": "Rivya",
        "description": "Image generation with the Rivya Public API v1 (model qwen-image).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Rivya",
                "external-doc-url": "https://rivya.ai/docs/api",
                "tags": ["software"],
            }
        ],
        "hooks": [],
        "operators": [],
        "sensors": [],
        "triggers": [],
        "connection-types": [],
    }
