"""What the OpenAPI document says of the execution routes (app/executions/router.py): their
descriptions, error responses and examples, and the start's two request bodies."""

from typing import Any

from app.core.openapi import RETRY_AFTER
from app.executions.schemas import ExecutionOut, StartExecutionForm, StartExecutionRequest

QUOTA_RESPONSE: dict[str, Any] = {
    "description": "A daily quota of yours is used up: the body names it and when it resets "
    "(UTC midnight); `Retry-After` says in how many seconds. Or too many requests with this "
    "token this minute.",
    "headers": RETRY_AFTER,
    "content": {
        "application/json": {
            "example": {
                "detail": "Daily quota max_executions_per_day reached: 100 executions of 100 "
                "today (UTC). It resets at 2026-12-02T00:00:00Z.",
                "quota": "max_executions_per_day",
                "limit": 100,
                "used": 100,
                "resets_at": "2026-12-02T00:00:00Z",
            }
        }
    },
}

START_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": StartExecutionRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": StartExecutionForm.model_json_schema(by_alias=True),
                "encoding": {"files[]": {"contentType": "application/octet-stream"}},
            },
        },
    }
}

START_DESCRIPTION = (
    "Validates `input` against the execution type's schema, stores the execution and "
    "queues it. Send JSON, or `multipart/form-data` with `input` as a JSON-encoded string "
    "and files as `files[]` (agents with file upload only; types are checked by content)."
    "\n\nSend an `Idempotency-Key` header (any string up to 255 characters, e.g. a UUID) "
    "to make retries safe: a repeat of the request with the same key within 24 hours "
    "starts nothing and answers the execution the first one started, in its current "
    "state (with `Idempotent-Replayed: true`). The same key with a different request "
    "(another agent, key, input or files) is refused with 409. Keys are per user."
    "\n\nOptional `limits` (`max_model_requests`, `max_total_tokens`, `max_cost` in USD) "
    "hold the run to a budget, beside the agent's (the stricter of each wins); a run past "
    "one ends `failed` with `budget_exceeded`. In a multipart form, `limits` is a "
    "JSON-encoded string."
)

START_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Unknown `execution_key`, invalid `input` (fields named; nested "
        "too deep, or NaN/Infinity), invalid `limits` (fields named, as `input`'s), files "
        "sent to an agent without file upload, or an unsupported file type. A `detail` "
        "string says what is wrong, beside a field's messages as a list of strings "
        "(`execution_key`, `files`); `input` and `limits` name their fields.",
        "content": {
            "application/json": {"example": {"input": {"skus": "Input should be a valid list"}}}
        },
    },
    404: {"description": "No such agent, or not visible to you."},
    409: {
        "description": "The `Idempotency-Key` was used in the last 24 hours for a "
        "different request.",
    },
    413: {
        "description": "A file is larger than the upload limit, or `input` than its "
        "limit (256 KiB of JSON by default).",
        "content": {
            "application/json": {
                "example": {"input": ["300000 bytes of JSON: the limit is 262144 bytes."]}
            }
        },
    },
    415: {"description": "Neither JSON nor multipart/form-data."},
    429: QUOTA_RESPONSE,
    503: {
        "description": "PostgreSQL is unreachable; or Redis is, and the service is set to "
        "refuse executions then (AGENTRUN_REJECT_WHEN_QUEUE_DOWN). Nothing was stored."
    },
}

LIST_DESCRIPTION = (
    "Your executions (all of them for admins), newest first, 25 a page. An "
    "`input` or `result` over the list's limit (64 KiB of JSON by default) shows as "
    '`{"truncated": true, "url": <the execution>}`; the execution itself shows it whole.'
)

READ_DESCRIPTION = (
    "Poll this until `status` is `finished` (read `result`) or `failed` "
    "(read `failure_code` and `failure_explanation`)."
)

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such execution, or not yours."},
}

LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "A filter has an invalid value (named in the body)."},
    404: {
        "description": "Invalid page.",
        "content": {"application/json": {"example": {"detail": "Invalid page."}}},
    },
}

CANCEL_DESCRIPTION = (
    "Ends the execution as `failed` with `failure_code` `cancelled` and the explanation "
    "`Cancelled by <username>.`. A `pending` execution is failed at once (200). An "
    "`in_progress` one is asked to stop (202): its worker aborts the agent run and records "
    "the failure within moments; poll the execution to see it. For the execution's owner "
    "and admins."
)

CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Was pending: now `failed` with `failure_code` `cancelled`."},
    202: {
        "description": "Running: the worker was asked to stop; `status` is still `in_progress`.",
        "model": ExecutionOut,
    },
    404: {"description": "No such execution, or not yours."},
    409: {
        "description": "The execution already finished or failed.",
        "content": {"application/json": {"example": {"detail": "Execution already finished."}}},
    },
}
