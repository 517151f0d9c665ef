"""[hardening] Every bad input fails before the first request: the field is named, the emulator
sees nothing, no credit is spent. One row per input, after templating (values as rendered).

Generate-operator arguments, connection settings and sensor arguments; the upload operator's
own table is in ``test_upload_operator.py``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Connection

from rivya_provider.compat import AirflowFailException
from rivya_provider.operators.generate import RivyaGenerateImageOperator
from rivya_provider.sensors.generation import RivyaGenerationSensor
from tests.operators.test_generate_validation import FakeTaskInstance

ITEM = {"url": "http://127.0.0.1:1/a.png", "kind": "image", "mimeType": "image/png"}
NAN, INF = float("nan"), float("inf")
EXISTING_FILE = "<existing file>"

# (id, operator keyword arguments, the field the error must name)
GENERATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("prompt-too-long", {"prompt": "x" * 5001}, "prompt"),
    ("prompt-empty", {"prompt": ""}, "prompt"),
    ("prompt-blank", {"prompt": "   \n"}, "prompt"),
    ("prompt-none", {"prompt": None}, "prompt"),
    ("prompt-number", {"prompt": 123}, "prompt"),
    ("prompt-list", {"prompt": ["a", "b"]}, "prompt"),
    ("prompt-lone-surrogate", {"prompt": "a lighthouse \ud800 at dusk"}, "prompt"),
    ("model-empty", {"model": ""}, "model"),
    ("model-number", {"model": 7}, "model"),
    ("image-size-unknown", {"image_size": "huge"}, "image_size"),
    ("image-size-number", {"image_size": 5}, "image_size"),
    ("image-size-empty", {"image_size": ""}, "image_size"),
    ("output-format-gif", {"output_format": "gif"}, "output_format"),
    ("output-format-upper", {"output_format": "PNG"}, "output_format"),
    ("model-params-string", {"model_params": "image_size=square"}, "model_params"),
    ("model-params-list", {"model_params": [["image_size", "square"]]}, "model_params"),
    ("model-params-number", {"model_params": 42}, "model_params"),
    ("model-params-unknown-key", {"model_params": {"image_sise": "square"}}, "image_sise"),
    ("model-params-seed", {"model_params": {"seed": 1}}, "seed"),
    ("model-params-bad-size", {"model_params": {"image_size": 1}}, "image_size"),
    ("model-params-null-format", {"model_params": {"output_format": None}}, "output_format"),
    ("model-params-surrogate", {"model_params": {"image_size": "sq\udc00"}}, "image_size"),
    (
        "image-size-twice",
        {"image_size": "square", "model_params": {"image_size": "square_hd"}},
        "image_size",
    ),
    (
        "references-twice",
        {"reference_media_items": [ITEM], "model_params": {"referenceMediaItems": []}},
        "reference_media_items",
    ),
    ("references-string", {"reference_media_items": "http://x/a.png"}, "reference_media_items"),
    ("references-number", {"reference_media_items": 42}, "reference_media_items"),
    ("references-list-of-str", {"reference_media_items": ["a", "b"]}, "reference_media_items"),
    ("references-two", {"reference_media_items": [ITEM, ITEM]}, "referenceMediaItems"),
    ("reference-video", {"reference_media_items": {**ITEM, "kind": "video"}}, "kind"),
    ("reference-gif", {"reference_media_items": {**ITEM, "mimeType": "image/gif"}}, "mimeType"),
    ("reference-no-url", {"reference_media_items": {"kind": "image"}}, "url"),
    ("reference-no-kind", {"reference_media_items": {"url": ITEM["url"]}}, "kind"),
    ("reference-file-url", {"reference_media_items": {**ITEM, "url": "file:///a.png"}}, "url"),
    ("reference-js-url", {"reference_media_items": {**ITEM, "url": "javascript:x()"}}, "url"),
    ("reference-ftp-url", {"reference_media_items": {**ITEM, "url": "ftp://h/a.png"}}, "url"),
    ("reference-blank-url", {"reference_media_items": {**ITEM, "url": "  "}}, "url"),
    ("reference-empty-url", {"reference_media_items": {**ITEM, "url": ""}}, "url"),
    (
        "reference-remote-http",
        {"reference_media_items": {**ITEM, "url": "http://example.com/a.png"}},
        "url",
    ),
    ("timeout-negative", {"timeout": -5}, "timeout"),
    ("timeout-zero", {"timeout": 0}, "timeout"),
    ("timeout-text", {"timeout": "abc"}, "timeout"),
    ("timeout-none", {"timeout": None}, "timeout"),
    ("timeout-nan", {"timeout": NAN}, "timeout"),
    ("timeout-inf", {"timeout": INF}, "timeout"),
    ("timeout-negative-timedelta", {"timeout": timedelta(seconds=-1)}, "timeout"),
    ("poll-negative", {"poll_interval": -1}, "poll_interval"),
    ("poll-zero", {"poll_interval": 0}, "poll_interval"),
    ("poll-nan", {"poll_interval": NAN}, "poll_interval"),
    ("poll-inf", {"poll_interval": INF}, "poll_interval"),
    ("poll-text", {"poll_interval": "5"}, "poll_interval"),
    ("poll-under-floor", {"poll_interval": 0.01}, "poll_interval"),
    ("poll-bool", {"poll_interval": True}, "poll_interval"),
    ("output-empty", {"output_path": ""}, "output_path"),
    ("output-blank", {"output_path": "   "}, "output_path"),
    ("output-number", {"output_path": 12345}, "output_path"),
    ("output-float", {"output_path": 3.5}, "output_path"),
    ("output-relative", {"output_path": "out/images"}, "output_path"),
    ("output-dot-relative", {"output_path": "./output"}, "output_path"),
    ("output-rendered-none", {"output_path": "None"}, "output_path"),
    ("output-unknown-scheme", {"output_path": "nosuchfs://bucket/x"}, "output_path"),
    # No S3 filesystem (the Airflow matrix), or the Amazon provider's without credentials
    # (dev: its NoCredentialsError is no OSError): refused naming output_path either way.
    ("output-no-filesystem", {"output_path": "s3://bucket/x"}, "output_path"),
    ("output-existing-file", {"output_path": EXISTING_FILE}, "output_path"),
    ("client-request-id-long", {"client_request_id": "c" * 129}, "client_request_id"),
    ("client-request-id-surrogate", {"client_request_id": "c\ud800"}, "client_request_id"),
    ("idempotency-key-spaces", {"idempotency_key": "my key"}, "idempotency_key"),
    ("idempotency-key-long", {"idempotency_key": "k" * 255}, "idempotency_key"),
    ("idempotency-key-non-ascii", {"idempotency_key": "clé"}, "idempotency_key"),
    ("idempotency-key-blank", {"idempotency_key": "  "}, "idempotency_key"),
    ("max-credits-negative", {"max_credits": -1}, "max_credits"),
    ("max-credits-text", {"max_credits": "100"}, "max_credits"),
    ("max-credits-float", {"max_credits": 10.5}, "max_credits"),
    ("output-name-slash", {"output_name": "../escape"}, "output_name"),
    ("output-name-space", {"output_name": "sku 1"}, "output_name"),
    ("output-name-empty", {"output_name": ""}, "output_name"),
    ("output-name-number", {"output_name": 7}, "output_name"),
    ("output-url-relative", {"output_url": "catalogue/images"}, "output_url"),
    ("output-url-file", {"output_url": "file:///srv/www"}, "output_url"),
    ("output-url-s3", {"output_url": "s3://bucket/x"}, "output_url"),
    ("output-url-no-host", {"output_url": "https:///x"}, "output_url"),
    ("output-url-query", {"output_url": "https://cdn.example.com/x?sig=1"}, "output_url"),
    ("output-url-number", {"output_url": 443}, "output_url"),
    ("verify-unchanged-md5", {"verify_unchanged": "md5"}, "verify_unchanged"),
]

# (id, the connection as the user stored it, the field the error must name)
CONNECTION_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("extra-malformed-json", {"extra": '{"timeout": 30,}'}, "extra"),
    ("extra-not-an-object", {"extra": "[30]"}, "extra"),
    ("extra-timeout-text", {"extra": {"timeout": "fast"}}, "extra.timeout"),
    ("extra-timeout-zero", {"extra": {"timeout": 0}}, "extra.timeout"),
    ("extra-poll-interval-nan", {"extra": {"poll_interval": "nan"}}, "extra.poll_interval"),
    ("extra-poll-interval-zero", {"extra": {"poll_interval": 0}}, "extra.poll_interval"),
    (
        "extra-poll-max-interval-zero",
        {"extra": {"poll_max_interval": 0}},
        "extra.poll_max_interval",
    ),
    ("extra-poll-factor-small", {"extra": {"poll_factor": 0.5}}, "extra.poll_factor"),
    ("extra-poll-first-delay-neg", {"extra": {"poll_first_delay": -1}}, "extra.poll_first_delay"),
    ("extra-max-attempts-zero", {"extra": {"max_attempts": 0}}, "extra.max_attempts"),
    ("extra-max-attempts-fraction", {"extra": {"max_attempts": 2.5}}, "extra.max_attempts"),
    ("extra-max-backoff-inf", {"extra": {"max_backoff": "inf"}}, "extra.max_backoff"),
    ("api-key-missing", {"password": None}, "password"),
    ("api-key-blank", {"password": "   "}, "password"),
    ("host-plain-http-remote", {"host": "http://rivya.example.com"}, "host"),
]

SENSOR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("sensor-generation-id-none", {"generation_id": "None"}, "generation_id"),
    ("sensor-generation-id-empty", {"generation_id": ""}, "generation_id"),
    ("sensor-generation-id-number", {"generation_id": 7}, "generation_id"),
    ("sensor-output-relative", {"output_path": "out"}, "output_path"),
    ("sensor-poll-zero", {"poll_interval": 0}, "poll_interval"),
]


def _fields(stored: dict[str, Any]) -> dict[str, Any]:
    return {key: stored.get(key) for key in ("host", "password", "extra")}


def _assert_refused(exc: BaseException, field: str, emulator: Any) -> None:
    message = str(exc)
    assert isinstance(exc, AirflowFailException), type(exc)
    assert f"{field}:" in message or f"{field} " in message, message
    assert emulator.api_key not in message
    assert emulator.requests() == []  # nothing sent, not even the catalogue
    ledger = emulator.ledger()
    assert ledger["entries"] == []
    assert ledger["balance"] == 1000


def _resolve(kwargs: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    if kwargs.get("output_path") == EXISTING_FILE:
        existing = tmp_path / "already-a-file.png"
        existing.write_bytes(b"not a folder")
        return {**kwargs, "output_path": str(existing)}
    return kwargs


@pytest.mark.parametrize(
    ("kwargs", "field"), [c[1:] for c in GENERATE_CASES], ids=[c[0] for c in GENERATE_CASES]
)
def test_a_bad_argument_is_refused_before_any_request(
    rivya_airflow_conn: Any, tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    arguments = {"prompt": "a lighthouse", **_resolve(kwargs, tmp_path)}
    operator = RivyaGenerateImageOperator(task_id="generate", retries=0, **arguments)
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    _assert_refused(raised.value, field, rivya_airflow_conn)


@pytest.mark.parametrize(
    ("connection", "field"), [c[1:] for c in CONNECTION_CASES], ids=[c[0] for c in CONNECTION_CASES]
)
def test_a_bad_connection_is_refused_naming_it_before_any_request(
    rivya_airflow_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    connection: dict[str, Any],
    field: str,
) -> None:
    stored = json.loads(rivya_airflow_conn.connection_json())
    stored.update(connection)
    if isinstance(stored.get("extra"), dict):
        stored["extra"] = json.dumps(stored["extra"])
        monkeypatch.setenv("AIRFLOW_CONN_RIVYA_BROKEN", json.dumps(stored))
    elif "extra" in connection:
        # Extras that are not a JSON object: as stored in the metadata DB (the UI's text field).
        # Airflow 3.1's env-var backend refuses such a connection itself, before any provider.
        from rivya_provider.hooks import rivya as hook_module

        broken = Connection(conn_id="rivya_broken", conn_type="rivya", **_fields(stored))
        monkeypatch.setattr(hook_module, "get_connection", lambda conn_id: broken)
    else:
        monkeypatch.setenv("AIRFLOW_CONN_RIVYA_BROKEN", json.dumps(stored))
    operator = RivyaGenerateImageOperator(
        task_id="generate", prompt="p", rivya_conn_id="rivya_broken"
    )
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert "connection 'rivya_broken'" in str(raised.value)
    _assert_refused(raised.value, field, rivya_airflow_conn)


@pytest.mark.parametrize(
    ("kwargs", "field"), [c[1:] for c in SENSOR_CASES], ids=[c[0] for c in SENSOR_CASES]
)
def test_a_bad_sensor_argument_is_refused_before_any_request(
    rivya_airflow_conn: Any, kwargs: dict[str, Any], field: str
) -> None:
    arguments = {"generation_id": "task_1", "deferrable": True, **kwargs}
    sensor = RivyaGenerationSensor(task_id="wait", **arguments)
    with pytest.raises(AirflowFailException) as raised:
        sensor.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    _assert_refused(raised.value, field, rivya_airflow_conn)


def test_the_table_covers_at_least_sixty_inputs() -> None:
    assert len(GENERATE_CASES) + len(CONNECTION_CASES) + len(SENSOR_CASES) >= 60
