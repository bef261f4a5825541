"""The A2A SDK's request handler interface, answered from the executions table through the
REST API's services (no task store of the SDK's own)."""

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from app.agents.models import Agent
from app.auth.service import Authenticated
from app.core.errors import Conflict, DomainError, NotFound
from app.core.ids import INT32_MAX
from app.core.rate_limit import check_rate_limit
from app.definitions.registry import definitions_for
from app.executions import listing, repository, service
from app.executions.models import ExecutionStatus
from app.executions.repository import ExecutionRow
from app.protocols import executions
from app.protocols.a2a import push
from app.protocols.a2a.tasks import STATUSES, events_of, from_data_part, task_of
from app.protocols.executions import Services

# Where the endpoint (app.protocols.a2a.endpoint) leaves the caller and the agent.
CALLER = "agentrun.a2a_caller"
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Caller:
    authenticated: Authenticated
    agent: Agent


def _caller(context: ServerCallContext) -> Caller:
    caller: Caller = context.state[CALLER]
    return caller


def _execution_id(task_id: str) -> int:
    # Past PostgreSQL's serial ids, no execution: not found, as any other unknown id.
    if not (task_id.isascii() and task_id.isdigit()) or len(task_id) > len(str(INT32_MAX)):
        raise TaskNotFoundError
    execution_id = int(task_id)
    if execution_id > INT32_MAX:
        raise TaskNotFoundError
    return execution_id


def _start_request(caller: Caller, message: Message) -> tuple[str, Any]:
    """The execution key and the input a message's data part asks for."""
    data = [from_data_part(part) for part in message.parts if part.HasField("data")]
    expected = 'one data part {"execution_key": ..., "input": {...}}'
    if len(data) != 1 or not isinstance(data[0], dict):
        raise InvalidParamsError(f"Expected {expected}.")
    request = data[0]
    key = request.get("execution_key")
    if key is None:
        # An agent of one execution type needs no key.
        keys = [d.key for d in definitions_for(caller.agent.agent_type)]
        key = keys[0] if len(keys) == 1 else None
    if not isinstance(key, str) or not key:
        known = ", ".join(d.key for d in definitions_for(caller.agent.agent_type)) or "none"
        raise InvalidParamsError(f"execution_key: required in {expected}. Available: {known}.")
    return key, request.get("input", {})


def _history_asked(
    params: GetTaskRequest | ListTasksRequest | SendMessageConfiguration, *, default: bool
) -> bool:
    """Whether the task's history (the message that started it) is asked for: a
    ``history_length`` of 1 or more; ``default`` when none is given."""
    if not params.HasField("history_length"):
        return default
    return params.history_length > 0


class ExecutionsRequestHandler(RequestHandler):
    def __init__(self, state: State) -> None:
        self._state = state

    @property
    def services(self) -> Services:
        # Read at each call: the app's lifespan makes them (again, should it run again).
        return Services.of(self._state)

    async def _visible(self, caller: Caller, task_id: str) -> ExecutionRow:
        """The execution of ``task_id`` if it is this agent's and the caller may see it."""
        async with self.services.transaction() as session:
            try:
                execution = await service.get_visible_execution(
                    session, caller.authenticated.user, _execution_id(task_id)
                )
            except NotFound:
                raise TaskNotFoundError from None
        if execution["agent_id"] != caller.agent.id:
            raise TaskNotFoundError
        return execution

    async def _start(self, params: SendMessageRequest, caller: Caller) -> ExecutionRow:
        if params.message.task_id:
            raise InvalidParamsError(
                "A task takes no further messages: send a new message without task_id."
            )
        key, raw_input = _start_request(caller, params.message)
        settings = self.services.settings
        set_push_config = None
        if params.configuration.HasField("task_push_notification_config"):
            asked = params.configuration.task_push_notification_config
            user = caller.authenticated.user
            try:
                await push.check(asked, settings)
            except DomainError as exc:
                raise InvalidParamsError(executions.describe(exc)) from None

            async def set_push_config(session: AsyncSession, execution: ExecutionRow) -> None:
                await push.set_config(session, settings.keyring, user, execution, asked)

        try:
            await check_rate_limit(
                self.services.queue,
                namespace=settings.queue_name,
                subject=f"token:{caller.authenticated.token_id}",
                per_minute=settings.rate_limit_per_minute,
            )
            started = await executions.start(
                self.services,
                user=caller.authenticated.user,
                agent=caller.agent,
                execution_key=key,
                raw_input=raw_input,
                # A repeated message id of the same user answers the same task.
                idempotency_key=f"a2a:{params.message.message_id}"
                if params.message.message_id
                else None,
                then=set_push_config,
            )
        except DomainError as exc:
            raise InvalidParamsError(executions.describe(exc)) from None
        return started.execution

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        execution = await self._start(params, _caller(context))
        if not params.configuration.return_immediately:
            execution = await executions.follow(
                self.services,
                execution,
                wait_seconds=self.services.settings.protocol_wait_seconds,
            )
        return task_of(execution, with_history=_history_asked(params.configuration, default=True))

    async def _stream(self, execution: ExecutionRow) -> AsyncGenerator[Event]:
        yield task_of(execution)
        watched = executions.watch(
            self.services, execution, wait_seconds=self.services.settings.protocol_wait_seconds
        )
        async for changed in watched:
            if changed is not execution:
                for event in events_of(changed):
                    yield event

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        execution = await self._start(params, _caller(context))
        async for event in self._stream(execution):
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        execution = await self._visible(_caller(context), params.id)
        async for event in self._stream(execution):
            yield event

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        execution = await self._visible(_caller(context), params.id)
        return task_of(execution, with_history=_history_asked(params, default=True))

    async def _task_of_context(
        self, caller: Caller, params: ListTasksRequest, status: ExecutionStatus | None
    ) -> ListTasksResponse:
        """The list of one context: a context is an execution's conversation, so it holds
        that one task (none if it is not the caller's, of this agent, in that status)."""
        raw = params.context_id
        found = None
        if raw.isascii() and raw.isdigit() and len(raw) <= len(str(INT32_MAX)):
            async with self.services.transaction() as session:
                found = await repository.execution_of_conversation(session, int(raw))
        tasks = []
        if found is not None:
            try:
                execution = await self._visible(caller, str(found))
            except TaskNotFoundError:
                pass
            else:
                if status is None or execution["status"] == status:
                    tasks.append(
                        task_of(
                            execution,
                            with_artifacts=params.include_artifacts,
                            with_history=_history_asked(params, default=False),
                        )
                    )
        return ListTasksResponse(
            tasks=tasks, next_page_token="", page_size=len(tasks), total_size=len(tasks)
        )

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        caller = _caller(context)
        size = (
            params.page_size if params.HasField("page_size") else self.services.settings.page_size
        )
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidParamsError(f"page_size: from 1 to {MAX_PAGE_SIZE}.")
        token = params.page_token
        if token and not (token.isascii() and token.isdigit() and len(token) <= 9):
            raise InvalidParamsError("page_token: not a token this server gave.")
        offset = int(token or 0)
        status = None
        if params.status != TaskState.TASK_STATE_UNSPECIFIED:
            status = STATUSES.get(params.status)
            if status is None:  # canceled, input required...: not told apart in a filter
                raise InvalidParamsError(
                    "status: filter by submitted, working, completed or failed."
                )
        if params.context_id:
            return await self._task_of_context(caller, params, status)
        filters = listing.ExecutionFilters(agent_id=caller.agent.id, status=status)
        user = caller.authenticated.user
        # An input over the list's size limit is left to the task's own read too.
        history = _history_asked(params, default=False)
        async with self.services.transaction() as session:
            page = await listing.list_executions(
                session,
                user,
                filters,
                offset=offset,
                limit=size,
                max_field_bytes=self.services.settings.list_max_field_bytes,
            )
            total = await listing.count_executions(session, user, filters, page)
        return ListTasksResponse(
            tasks=[
                # A result over the list's size limit is left to the task's own read.
                task_of(
                    row,
                    with_artifacts=params.include_artifacts and not row["result_truncated"],
                    with_history=history and not row["input_truncated"],
                )
                for row in page.executions
            ],
            next_page_token=str(offset + size) if page.has_next else "",
            page_size=size,
            total_size=max(total, offset + len(page.executions)),
        )

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        caller = _caller(context)
        execution = await self._visible(caller, params.id)
        try:
            async with self.services.transaction() as session:
                cancellation = await service.cancel_execution(
                    session,
                    self.services.queue,
                    self.services.settings,
                    caller.authenticated.user,
                    execution["id"],
                )
        except Conflict:
            raise TaskNotCancelableError from None
        return task_of(cancellation.execution)

    # Push notification configs: webhook endpoints of the task's execution (push.py).
    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        caller = _caller(context)
        execution = await self._visible(caller, params.task_id)
        keyring = self.services.settings.keyring
        try:
            await push.check(params, self.services.settings)
            async with self.services.transaction() as session:
                return await push.set_config(
                    session, keyring, caller.authenticated.user, execution, params
                )
        except DomainError as exc:
            raise InvalidParamsError(executions.describe(exc)) from None

    async def _configs(self, caller: Caller, task_id: str) -> list[TaskPushNotificationConfig]:
        execution = await self._visible(caller, task_id)
        async with self.services.transaction() as session:
            return await push.list_configs(
                session, self.services.settings.keyring, caller.authenticated.user, execution
            )

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        for config in await self._configs(_caller(context), params.task_id):
            if config.id == params.id:
                return config
        raise TaskNotFoundError(f"No push notification config {params.id!r} on this task.")

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        # At most push.MAX_CONFIGS_PER_TASK: one page.
        configs = await self._configs(_caller(context), params.task_id)
        return ListTaskPushNotificationConfigsResponse(configs=configs)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        caller = _caller(context)
        execution = await self._visible(caller, params.task_id)
        async with self.services.transaction() as session:
            await push.delete_config(
                session,
                self.services.settings.keyring,
                caller.authenticated.user,
                execution,
                params.id,
            )

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError
