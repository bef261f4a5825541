"""Start an execution: choose an agent and a type, fill in the form its input schema makes."""

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from app.agents.models import Agent
from app.agents.service import get_visible_agent, list_visible_agents
from app.console.start_form import InputField, field_messages, input_fields, posted_input
from app.console.web import ConsoleRoute, ConsoleUser, check_csrf, redirect, render
from app.conversations.dependencies import TextExtractorDep
from app.core.dependencies import QueueDep, SessionDep, SettingsDep
from app.core.errors import Invalid, PayloadTooLarge
from app.core.ids import RowId
from app.definitions.base import ExecutionDefinition
from app.definitions.registry import definitions_for, find_definition
from app.executions.start import Origin, StartExecution, start_execution

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/start/", name="console_start")
async def choose(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    agents = await list_visible_agents(session, user)
    choices = [(agent, definitions_for(agent.agent_type)) for agent in agents]
    return render(request, "start_choose.html", {"user": user, "choices": choices})


def execution_definition(agent: Agent, key: str) -> ExecutionDefinition:
    definition = find_definition(agent.agent_type, key)
    if definition is None:
        raise Invalid(f"The agent {agent.name!r} has no execution type {key!r}.")
    return definition


def _form_page(
    request: Request,
    user: Any,
    agent: Agent,
    definition: ExecutionDefinition,
    *,
    values: dict[str, str] | None = None,
    field_errors: dict[str, str] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    fields: list[InputField] = input_fields(definition.input_schema())
    return render(
        request,
        "start_form.html",
        {
            "user": user,
            "agent": agent,
            "definition": definition,
            "fields": fields,
            "values": values or {f.form_name: f.initial() for f in fields},
            "field_errors": field_errors or {},
            "errors": errors or [],
            # A double submit answers the first execution instead of starting a second.
            "idempotency_key": str(uuid.uuid4()),
        },
        status_code,
    )


@router.get("/agents/{agent_id}/start/{key}/", name="console_start_form")
async def form(
    agent_id: RowId, key: str, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    agent = await get_visible_agent(session, user, agent_id)
    return _form_page(request, user, agent, execution_definition(agent, key))


@router.post("/agents/{agent_id}/start/{key}/", name="console_start_post")
async def start(
    agent_id: RowId,
    key: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    extractor: TextExtractorDep,
    user: ConsoleUser,
) -> Response:
    agent = await get_visible_agent(session, user, agent_id)
    definition = execution_definition(agent, key)
    fields = input_fields(definition.input_schema())
    max_part_size = max(settings.max_input_bytes + 1, 1024 * 1024)
    async with request.form(
        max_files=settings.max_upload_files * 2, max_part_size=max_part_size
    ) as posted_form:
        check_csrf(request, posted_form)
        values = {name: value for name, value in posted_form.items() if isinstance(value, str)}
        posted = posted_input(fields, posted_form)
        files = [
            upload
            for upload in posted_form.getlist("files")
            # A file input left empty still posts a part, without a name.
            if isinstance(upload, UploadFile) and upload.filename
        ]
        command = StartExecution(
            user=user,
            agent=agent,
            origin=Origin.CONSOLE,
            execution_key=key,
            raw_input=posted.value,
            files=files,
            idempotency_key=values.get("idempotency_key") or None,
        )
        try:
            if posted.errors:
                raise Invalid({"input": posted.errors})
            started = await start_execution(session, queue, settings, command, extractor)
        except (Invalid, PayloadTooLarge) as error:
            by_field, general = field_messages(error.body)
            return _form_page(
                request,
                user,
                agent,
                definition,
                values=values,
                field_errors=by_field,
                errors=general,
                status_code=error.status_code,
            )
    return redirect(request, "console_execution", execution_id=started.execution.id)
