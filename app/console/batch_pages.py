"""The batches list and one batch (counts, progress, cancel, the results download), over the
same services as the API's batch routes, for the session's user."""

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from app.batches import service
from app.batches.repository import BatchRow
from app.batches.results import result_lines
from app.batches.schemas import BatchOut
from app.console.web import ConsoleRoute, ConsoleUser, checked_form, redirect, render
from app.core.dependencies import QueueDep, SessionDep, SettingsDep
from app.core.ids import RowId
from app.core.query import Paging

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

# A page of a batch still running reloads itself this often (no script needed).
REFRESH_SECONDS = 3


def _shown(batch: BatchRow, request: Request) -> BatchOut:
    return BatchOut.of(
        batch,
        results=str(request.url_for("console_batch_results", batch_id=batch["id"])),
        executions=str(
            request.url_for("console_executions").include_query_params(batch=batch["id"])
        ),
    )


@router.get("/batches/", name="console_batches")
async def list_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser, page: str = "1"
) -> Response:
    paging = Paging.of(page, settings.page_size)
    found = await service.list_batches(session, user, offset=paging.offset, limit=paging.size)
    paging.check_found(len(found.batches))
    return render(
        request,
        "batches.html",
        {
            "user": user,
            "batches": [_shown(batch, request) for batch in found.batches],
            "count": found.count,
            "page": paging.number,
            "has_next": paging.has_next(found.count),
        },
    )


@router.get("/batches/{batch_id}/", name="console_batch")
async def batch_page(
    batch_id: RowId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    batch = _shown(await service.get_visible_batch(session, user, batch_id), request)
    return render(
        request,
        "batch.html",
        {
            "user": user,
            "batch": batch,
            "ended": batch.counts.finished + batch.counts.failed,
            "refresh": None if batch.status == "finished" else REFRESH_SECONDS,
        },
    )


@router.post("/batches/{batch_id}/cancel", name="console_batch_cancel")
async def cancel(
    batch_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    user: ConsoleUser,
) -> Response:
    await checked_form(request)
    await service.cancel_batch(session, queue, settings, user, batch_id)
    return redirect(request, "console_batch", batch_id=batch_id)


@router.get("/batches/{batch_id}/results", name="console_batch_results")
async def results(
    batch_id: RowId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """The API's NDJSON results, as a download for the session's user."""
    await service.get_visible_batch(session, user, batch_id)
    return StreamingResponse(
        result_lines(request.app.state.read_sessionmaker, batch_id),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.jsonl"'},
    )
