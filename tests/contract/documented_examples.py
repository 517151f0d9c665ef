"""The documented JSON examples of RIVYA_API.md, copied literally (placeholders included).

Both sides of the contract are held to them: ``test_contract_emulator`` checks the emulator's
live answers against their shape, ``test_contract_client`` feeds them to the client's models.
"""

from __future__ import annotations

from typing import Any

# -- RIVYA_API.md, "The task object" (the example and the success/failure bullets) ---------
TASK_QUEUED = {
    "id": "task_...",
    "status": "queued",
    "model": "qwen-image",
    "reserved_credits": 4,
    "final_credits": 0,
    "created_at": "2026-05-11T00:00:00.000Z",
    "updated_at": "2026-05-11T00:00:00.000Z",
    "result": None,
    "error": None,
}
TASK_SUCCEEDED = {
    **TASK_QUEUED,
    "status": "succeeded",
    "final_credits": 4,
    "result": {"primary_url": "<url>", "urls": ["<url>"]},
}
TASK_FAILED = {
    **TASK_QUEUED,
    "status": "failed",
    "final_credits": 0,
    "error": {"code": "generation_failed", "message": "..."},
}
TASK_STATUSES = {"queued", "processing", "succeeded", "failed"}

# -- RIVYA_API.md, "Errors" -----------------------------------------------------------------
ERROR_ENVELOPE = {"error": {"code": "<code>", "message": "...", "requestId": "req_..."}}
ERROR_TABLE = {
    "public_api_disabled": 503,
    "api_key_missing": 401,
    "api_key_invalid": 401,
    "api_key_revoked": 401,
    "api_key_expired": 401,
    "api_scope_denied": 403,
    "rate_limited": 429,
    "validation_failed": 400,
    "not_found": 404,
    "idempotency_conflict": 409,
    "insufficient_credits": 402,
}

# -- RIVYA_API.md, "Endpoints" (credits) and "Files API" ([assumed] shape) ------------------
CREDITS = {"current_credits": 1234}
FILE = {
    "id": "file_...",
    "url": "...",
    "kind": "image",
    "name": "...",
    "mime_type": "image/png",
    "size_bytes": 1234,
    "duration_token": None,
    "created_at": "...",
}
FILE_KINDS = {"image", "video", "audio"}

# -- RIVYA_API.md, "Model catalogue" -------------------------------------------------------
MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": "z-image",
            "display_name": "Z-Image",
            "category": "image",
            "runtime": "async_task",
            "base_credits": 1,
            "billing_type": "FIXED",
            "supported_modes": ["text-to-image"],
            "max_prompt_length": 1000,
            "reference_media": None,
            "params": [],
            "api_status": "available",
            "api_input_status": "available_text",
            "supported_api_inputs": ["text"],
            "requires_files_api": False,
            "requires_upload_for_modes": [],
            "url_input_supported": False,
            "file_kinds": [],
            "chat_capabilities": None,
            "notices": [],
        }
    ],
}
