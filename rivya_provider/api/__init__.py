"""Airflow-free client for the Rivya Public API v1: models, errors, sync and async clients.

One public face: every name a module lists in its ``__all__`` is importable from here, and each
name is listed only there. The package imports httpx and pydantic (Airflow loads both anyway);
nothing at DAG-parse time imports it: operators import the client inside ``execute``.
"""

from __future__ import annotations

from rivya_provider.api import (
    budget,
    catalogue,
    client,
    config,
    errors,
    idempotency,
    mime,
    models,
    polling,
    pool,
    upload_source,
    uploads,
)
from rivya_provider.api.budget import *  # noqa: F403
from rivya_provider.api.catalogue import *  # noqa: F403
from rivya_provider.api.client import *  # noqa: F403
from rivya_provider.api.config import *  # noqa: F403
from rivya_provider.api.errors import *  # noqa: F403
from rivya_provider.api.idempotency import *  # noqa: F403
from rivya_provider.api.mime import *  # noqa: F403
from rivya_provider.api.models import *  # noqa: F403
from rivya_provider.api.polling import *  # noqa: F403
from rivya_provider.api.pool import *  # noqa: F403
from rivya_provider.api.upload_source import *  # noqa: F403
from rivya_provider.api.uploads import *  # noqa: F403

__all__ = [
    name
    for module in (
        budget,
        catalogue,
        client,
        config,
        errors,
        idempotency,
        mime,
        models,
        polling,
        pool,
        upload_source,
        uploads,
    )
    for name in module.__all__
]
