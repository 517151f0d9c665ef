"""OpenLineage for Rivya tasks: what went in (reference files), what came out (stored images, a
batch's index) and a run facet with the generation ids, model and credits (never the API key).

Only the OpenLineage provider calls the operators' ``get_openlineage_facets_on_*`` methods, and
only they import this module: nothing here loads unless ``apache-airflow-providers-openlineage``
is installed (the ``openlineage`` extra).

Dataset names follow OpenLineage's naming: a local file is namespace ``file`` with its absolute
path as name; ``s3://bucket/key`` is namespace ``s3://bucket``, name ``key`` (as every object
store); an HTTP(S) URL is namespace ``scheme://host`` with its path as name, its query dropped
(Rivya signs media URLs there: a signature is a credential, and it changes on every read).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from attrs import define

__all__ = [
    "MAX_FACET_IDS",
    "RivyaRunFacet",
    "batch_lineage",
    "dataset_of",
    "generation_lineage",
    "upload_lineage",
]

#: Most generation ids one run facet lists (a batch of thousands counts them instead).
MAX_FACET_IDS = 100


@define
class RivyaRunFacet(RunFacet):
    """What Rivya did in this run: the model, the generations, the credits they cost."""

    model: str | None
    generationIds: list[str]  # OpenLineage facets use camelCase
    generations: int
    credits: int | None
    clientRequestId: str | None = None


def dataset_of(location: object) -> Dataset | None:
    """The OpenLineage dataset of a stored file, a local path or a URL; ``None`` if unnamed."""
    if location is None:
        return None
    text = str(location).strip()
    if not text:
        return None
    if "://" not in text:  # a local path, relative ones made absolute (as they are read)
        return Dataset(namespace="file", name=os.path.abspath(os.path.expanduser(text)))
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Dataset(namespace="file", name=parts.path or "/")
    if parts.scheme in ("http", "https"):
        return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path or "/")
    if not parts.netloc:
        return None
    return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/"))


def _unique(datasets: Iterable[Dataset | None]) -> list[Dataset]:
    seen: dict[tuple[str, str], Dataset] = {}
    for dataset in datasets:
        if dataset is not None:
            seen.setdefault((dataset.namespace, dataset.name), dataset)
    return list(seen.values())


def _reference_urls(items: object) -> list[object]:
    """The ``url`` of each reference item (one dict or a list of them, as the operators take)."""
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, (list, tuple)):
        return []
    return [item.get("url") for item in items if isinstance(item, Mapping)]


def _lineage(inputs: list[Dataset], outputs: list[Dataset], run: RunFacet | None) -> Any:
    """An ``OperatorLineage`` (imported here: it is the provider's, not the compat layer's)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=inputs, outputs=outputs, run_facets={"rivya": run} if run is not None else {}
    )


def generation_lineage(
    reference_media_items: object,
    manifest: Mapping[str, Any] | None,
    generation_id: str | None = None,
) -> Any:
    """One generation: its reference files in, its stored images out (none when only URLs
    were kept or it failed), and the run facet."""
    inputs = _unique(dataset_of(url) for url in _reference_urls(reference_media_items))
    if manifest is None:
        facet = (
            RivyaRunFacet(model=None, generationIds=[generation_id], generations=1, credits=None)
            if generation_id
            else None
        )
        return _lineage(inputs, [], facet)
    images = manifest.get("images", [])
    outputs = _unique(dataset_of(image.get("path")) for image in images)
    ids = [str(manifest["generation_id"])] if manifest.get("generation_id") else []
    facet = RivyaRunFacet(
        model=manifest.get("model"),
        generationIds=ids,
        generations=len(ids),
        credits=manifest.get("final_credits"),
        clientRequestId=manifest.get("client_request_id"),
    )
    return _lineage(inputs, outputs, facet)


def batch_lineage(
    model: str | None,
    item_params: Iterable[Mapping[str, Any]],
    summary: Mapping[str, Any] | None,
    generation_ids: list[str],
) -> Any:
    """A batch: every distinct reference file of its items' ``params`` in, its ``index.jsonl``
    out (it lists each stored image), and the run facet (the first :data:`MAX_FACET_IDS`
    generation ids, and their count)."""
    inputs = _unique(
        dataset_of(url)
        for params in item_params
        for url in _reference_urls(params.get("referenceMediaItems"))
    )
    outputs = _unique([dataset_of(summary.get("index"))] if summary else [])
    facet = RivyaRunFacet(
        model=model,
        generationIds=generation_ids[:MAX_FACET_IDS],
        generations=len(generation_ids),
        credits=summary.get("credits_spent") if summary else None,
    )
    return _lineage(inputs, outputs, facet)


def upload_lineage(source: object, item: Mapping[str, Any] | None) -> Any:
    """An upload: the source file in, the file Rivya keeps (its URL, unsigned) out."""
    outputs = _unique([dataset_of(item.get("url"))] if item else [])
    return _lineage(_unique([dataset_of(source)]), outputs, None)
