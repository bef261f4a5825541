"""What the OpenAPI document says of the batch routes (app/batches/router.py)."""

from typing import Any

from app.batches.schemas import BatchOut, ResultLine, SubmitBatchForm, SubmitBatchRequest
from app.executions.openapi import QUOTA_RESPONSE

# Given as pydantic writes them: app.core.openapi makes their $defs the document's components.
SUBMIT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SubmitBatchRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": SubmitBatchForm.model_json_schema(),
                "encoding": {"items": {"contentType": "application/x-ndjson"}},
            },
        },
    }
}
SUBMIT_DESCRIPTION = (
    "Starts one execution an item, all of the agent and `execution_key`, at the batch "
    'priority. Send JSON `{"execution_key", "items": [{"input": {...}}, ...], '
    '"limits"}`, or for large batches `multipart/form-data` with `execution_key`, '
    '`limits` (JSON-encoded) and the file `items`: JSONL, one `{"input": {...}}` a line.'
    "\n\nAll or nothing: every item is validated as a single start's `input` is; any "
    "invalid item makes the request a 400 naming each item in error by its index (the "
    "first 50), and nothing is stored. Up to `AGENTRUN_MAX_BATCH_ITEMS` items (10,000 by "
    "default) in a body of up to `AGENTRUN_MAX_BATCH_BYTES` (64 MiB): over either, 413. "
    "Each item counts against your daily quotas: a batch that would pass one is refused "
    "whole (429). `limits` apply to every item. An `Idempotency-Key` makes a repeat within "
    "24 hours answer the first batch (`Idempotent-Replayed: true`)."
)
SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Unknown `execution_key`, invalid `limits`, or invalid items: each "
        "named by its index with its field errors, as a single start names them.",
        "content": {
            "application/json": {
                "example": {
                    "detail": "1 item(s) are invalid: nothing was stored.",
                    "items": {"57": {"input": {"skus": "Input should be a valid list"}}},
                }
            }
        },
    },
    404: {"description": "No such agent, or not visible to you."},
    409: {"description": "The `Idempotency-Key` was used for a different request."},
    413: {
        "description": "More items than `AGENTRUN_MAX_BATCH_ITEMS`, or a body larger "
        "than `AGENTRUN_MAX_BATCH_BYTES`: the limit is named.",
    },
    415: {"description": "Neither JSON nor multipart/form-data."},
    429: QUOTA_RESPONSE,
    503: {"description": "PostgreSQL is unreachable. Nothing was stored."},
}
NOT_YOURS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such batch, or not yours."},
}
CANCEL_DESCRIPTION = (
    "Items not started yet end `failed` with `failure_code` `cancelled` at once; running "
    "ones are asked to stop, as a single execution's cancel does, and end `cancelled` "
    "within moments. 200 when nothing is left running, 202 when items are stopping."
)
CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Nothing is left running: the batch is `finished`."},
    202: {"description": "Running items were asked to stop.", "model": BatchOut},
    **NOT_YOURS,
    409: {"description": "Every item had ended already."},
}
RESULTS_DESCRIPTION = (
    "`application/x-ndjson`: one line an item, in submission order, streamed: "
    + ", ".join(f"`{name}`" for name in ResultLine.model_fields)
    + ". It can be fetched while the batch runs: an item not ended yet shows its status "
    "(`pending`, `in_progress`) and a null result."
)
RESULTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/x-ndjson": {
                "schema": ResultLine.model_json_schema(),
                "example": '{"item":0,"execution_id":41,"status":"finished","result":{},'
                '"failure_code":null,"failure_explanation":null}\n',
            }
        }
    },
    **NOT_YOURS,
}
EVENTS_DESCRIPTION = (
    "Server-Sent Events: `event: progress` with the batch (its counts) when it is opened "
    "and whenever items move (at most a few times a second), then `event: finished` with "
    "the batch once every item has ended, and the stream ends. A comment every 15 s keeps "
    "the connection alive."
)
