"""What a model costs and whether it can be called now, read from the public catalogue.

``GET /api/v1/models`` is public and changes rarely: :class:`ModelCatalogue` keeps it per
process and in a small file in the temporary folder (Airflow runs each task in a fresh process),
for ``ttl`` seconds, so no operator adds a request per generation. The local rules
(``PARAMS_MODELS``) stay the source of truth for validation; where the catalogue disagrees
with them, a warning names both values, once per process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rivya_provider.api.errors import RivyaError
from rivya_provider.api.models import PARAMS_MODELS

__all__ = ["CATALOGUE_TTL", "ModelCatalogue", "ModelInfo", "ModelStatus"]

log = logging.getLogger("rivya_provider.api")

#: Seconds a fetched catalogue is trusted.
CATALOGUE_TTL = 300.0


class ModelInfo(BaseModel):
    """One entry of the public catalogue (``GET /api/v1/models``), with the documented fields.

    Unknown fields are kept (``model_extra``). The element formats of ``params``,
    ``reference_media`` and ``chat_capabilities`` are not documented: any JSON is accepted there.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    display_name: str | None = None
    category: str | None = None
    runtime: str | None = None
    base_credits: int | None = None
    billing_type: str | None = None
    supported_modes: list[str] = Field(default_factory=list)
    max_prompt_length: int | None = None
    reference_media: Any = None
    params: Any = None
    api_status: str | None = None
    api_input_status: str | None = None
    supported_api_inputs: list[str] = Field(default_factory=list)
    requires_files_api: bool | None = None
    requires_upload_for_modes: list[str] = Field(default_factory=list)
    url_input_supported: bool | None = None
    file_kinds: list[str] = Field(default_factory=list)
    chat_capabilities: Any = None
    notices: list[Any] = Field(default_factory=list)

    @property
    def callable(self) -> bool:
        """Whether the API takes generations for it now (``api_status`` ``available``)."""
        return self.api_status == "available"

    @property
    def fixed_price(self) -> int | None:
        """Credits per generation when billing is ``FIXED`` and the price is listed."""
        return self.base_credits if (self.billing_type or "").upper() == "FIXED" else None


@dataclasses.dataclass(frozen=True)
class ModelStatus:
    """One model as the catalogue (or, when unreachable, the local rules) describes it.

    :param model_id: the model asked about.
    :param info: its catalogue entry; ``None`` when the catalogue was unreachable or lacks it.
    :param reachable: whether the catalogue could be read.
    """

    model_id: str
    info: ModelInfo | None
    reachable: bool

    @property
    def callable(self) -> bool:
        """False only when the catalogue lists the model as not ``available``."""
        return self.info is None or self.info.callable

    @property
    def api_status(self) -> str | None:
        """The catalogue's ``api_status`` (``None`` when unknown)."""
        return self.info.api_status if self.info is not None else None

    def credits_per_generation(self) -> tuple[int | None, Literal["catalogue", "local", "none"]]:
        """The price of one generation, and where it comes from.

        The catalogue's ``base_credits`` for ``FIXED`` billing; else the local price table.
        """
        if self.info is not None and self.info.fixed_price is not None:
            return self.info.fixed_price, "catalogue"
        spec = PARAMS_MODELS.get(self.model_id)
        if spec is not None and spec.credits_per_generation is not None:
            return spec.credits_per_generation, "local"
        return None, "none"


class ModelCatalogue:
    """The public catalogue of one API, cached per process and on disk for ``ttl`` seconds.

    :param base_url: the API it describes (keys the cache).
    :param ttl: seconds a fetched catalogue is trusted.
    :param cache_dir: folder of the shared file cache (default: the temporary folder);
        ``None`` keeps it in memory only.
    :param clock: epoch-seconds clock.
    """

    #: Shared by every instance of this process: base URL -> (fetched at, models).
    _memory: ClassVar[dict[str, tuple[float, list[ModelInfo]]]] = {}
    _warned: ClassVar[set[tuple[str, str, object, object]]] = set()

    def __init__(
        self,
        base_url: str,
        *,
        ttl: float = CATALOGUE_TTL,
        cache_dir: Path | Literal["tmp"] | None = "tmp",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url
        self.ttl = ttl
        folder = Path(tempfile.gettempdir()) if cache_dir == "tmp" else cache_dir
        digest = hashlib.sha256(base_url.encode()).hexdigest()[:16]
        self.cache_file = folder / f"rivya-catalogue-{digest}.json" if folder else None
        self.clock = clock

    def status(self, model_id: str, fetch: Callable[[], list[ModelInfo]]) -> ModelStatus:
        """The model's status; ``fetch`` (e.g. ``client.list_models``) runs on a cache miss.

        An unreachable catalogue is logged and reported (``reachable`` False), never raised:
        it must not stop a generation the local rules allow.
        """
        models = self._cached()
        if models is None:
            try:
                models = fetch()
            except RivyaError as exc:
                log.warning("Rivya model catalogue unreachable (%s); using the local rules", exc)
                return ModelStatus(model_id, None, reachable=False)
            self._store(models)
        info = next((model for model in models if model.id == model_id), None)
        if info is not None:
            self._compare_with_local_rules(info)
        return ModelStatus(model_id, info, reachable=True)

    def _cached(self) -> list[ModelInfo] | None:
        now = self.clock()
        fetched_at, models = self._memory.get(self.base_url, (0.0, []))
        if now - fetched_at < self.ttl:
            return models
        if self.cache_file is None:
            return None
        try:
            saved = json.loads(self.cache_file.read_text())
            fetched_at = float(saved["fetched_at"])
            models = [ModelInfo.model_validate(entry) for entry in saved["data"]]
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None
        if not 0 <= now - fetched_at < self.ttl:
            return None
        self._memory[self.base_url] = (fetched_at, models)
        return models

    def _store(self, models: list[ModelInfo]) -> None:
        fetched_at = self.clock()
        self._memory[self.base_url] = (fetched_at, models)
        if self.cache_file is None:
            return
        payload = {
            "base_url": self.base_url,
            "fetched_at": fetched_at,
            "data": [model.model_dump(mode="json") for model in models],
        }
        partial = self.cache_file.with_suffix(f".{os.getpid()}.part")
        with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
            partial.write_text(json.dumps(payload))
            partial.replace(self.cache_file)

    def _compare_with_local_rules(self, info: ModelInfo) -> None:
        spec = PARAMS_MODELS.get(info.id)
        if spec is None:
            return
        pairs = (
            ("base_credits", info.fixed_price, spec.credits_per_generation),
            ("max_prompt_length", info.max_prompt_length, spec.prompt_max_length),
        )
        for field, listed, local in pairs:
            if listed is None or local is None or listed == local:
                continue
            warning = (info.id, field, listed, local)
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning(
                    "Rivya catalogue lists %s %s=%s, the local rules say %s; validating with "
                    "the local rules",
                    info.id,
                    field,
                    listed,
                    local,
                )
