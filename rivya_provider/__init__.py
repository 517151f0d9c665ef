"""Apache Airflow provider for the Rivya Public API v1.

Importing this package is cheap: it imports neither Airflow nor httpx. Public classes live in
their modules (``rivya_provider.operators.generate`` and friends) and are imported from there.
"""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__"]
