"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Keep this module free of imports beyond the standard library: Airflow calls it while it
discovers providers, often in processes that never use Rivya.
"""

from __future__ import annotations

from typing import Any

from rivya_provider import __version__

#: Where Admin -> Providers links: Rivya's API documentation, a page that exists whether or not
#: this package came from a package index (its own README ships in the sdist).
DOCUMENTATION_URL = "https://rivya.ai/docs/api"


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ProvidersManager expects."""
    return {
        "package-name": "airflow-provider-rivya",
        "name": "Rivya",
        "description": "Image generation with the Rivya Public API v1 (model qwen-image).",
        "versions": [__version__],
        # Without it Admin -> Providers links to a non-existent airflow.apache.org page.
        "documentation-url": DOCUMENTATION_URL,
        "integrations": [
            {
                "integration-name": "Rivya",
                "external-doc-url": "https://rivya.ai/docs/api",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": "Rivya", "python-modules": ["rivya_provider.hooks.rivya"]}],
        "operators": [
            {
                "integration-name": "Rivya",
                "python-modules": [
                    "rivya_provider.operators.batch",
                    "rivya_provider.operators.generate",
                    "rivya_provider.operators.upload",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Rivya", "python-modules": ["rivya_provider.sensors.generation"]}
        ],
        "triggers": [
            {
                "integration-name": "Rivya",
                "python-modules": [
                    "rivya_provider.triggers.batch",
                    "rivya_provider.triggers.generation",
                ],
            }
        ],
        # Listed by `airflow providers links`; the operators carry them in operator_extra_links.
        "extra-links": [
            "rivya_provider.links.RivyaBatchIndexLink",
            "rivya_provider.links.RivyaImageLink",
        ],
        "connection-types": [
            {
                "hook-class-name": "rivya_provider.hooks.rivya.RivyaHook",
                "hook-name": "Rivya",
                "connection-type": "rivya",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "port", "schema"],
                    "relabeling": {"password": "API key", "host": "Base URL"},
                    "placeholders": {
                        "host": "https://rivya.ai",
                        "password": "rvya_sk_...",
                        "extra": '{"timeout": 30, "max_attempts": 5, "poll_interval": 5}',
                    },
                },
                # Defaults mirror ClientConfig and PollSchedule (tests/hooks holds them equal).
                "conn-fields": {
                    "timeout": {
                        "label": "Request timeout (s)",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 30.0,
                            "exclusiveMinimum": 0,
                        },
                        "description": "Seconds for one whole request: pool wait, connect, answer.",
                    },
                    "max_attempts": {
                        "label": "Max attempts per request",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 1},
                        "description": "Tries on network errors, 429, 502-504 (first included).",
                    },
                    "max_backoff": {
                        "label": "Max total backoff (s)",
                        "schema": {"type": ["number", "null"], "default": 60.0, "minimum": 0},
                        "description": "Most seconds one call waits between its attempts.",
                    },
                    "poll_first_delay": {
                        "label": "First status check after (s)",
                        "schema": {"type": ["number", "null"], "default": 2.0, "minimum": 0},
                    },
                    "poll_interval": {
                        "label": "Poll interval (s)",
                        "schema": {"type": ["number", "null"], "default": 5.0, "minimum": 0},
                    },
                    "poll_factor": {
                        "label": "Poll interval growth factor",
                        "schema": {"type": ["number", "null"], "default": 1.5, "minimum": 1},
                    },
                    "poll_max_interval": {
                        "label": "Max poll interval (s)",
                        "schema": {"type": ["number", "null"], "default": 15.0, "minimum": 0},
                    },
                    "max_requests_per_second": {
                        "label": "Max requests per second",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 10.0,
                            "exclusiveMinimum": 0,
                        },
                        "description": "This process's pace for the account; halves on a 429.",
                    },
                },
            }
        ],
    }
