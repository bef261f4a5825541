"""Service settings, read once from the environment (prefix ``AGENTRUN_``) and a ``.env`` file."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.encryption import Keyring, keyring_of, parse_key
from app.core.json_input import DEFAULT_MAX_JSON_DEPTH
from app.core.proxy import trusted_networks


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTRUN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/agentrun"
    # The API's event listener LISTENs on a connection of its own opened from this URL (unset:
    # database_url). A session-level LISTEN needs one server connection for as long as it runs,
    # which a pooler in transaction mode does not give: behind PgBouncer, PostgreSQL's own
    # address (deploy/README.md, PgBouncer).
    database_listen_url: str | None = None
    # Connections each process keeps open (no overflow beyond them).
    database_pool_size: int = 20
    # How long a request waits for a free connection before it answers 503.
    database_pool_timeout_seconds: float = 10.0
    # An unreachable (not refusing) database answers 503 after this long, not after asyncpg's 60 s.
    database_connect_timeout_seconds: float = 5.0
    # PostgreSQL cancels any statement running longer (statement_timeout on every connection the
    # API and workers open), so that a hung one cannot hold its connection; 0 disables.
    database_statement_timeout_seconds: float = Field(default=30.0, ge=0)
    # A migration waiting this long for a lock (a long transaction holds the table) fails
    # instead of queueing every query behind its own request; the deploy's Job runs it again.
    migration_lock_timeout_seconds: float = Field(default=5.0, gt=0)
    # False behind a pooler that hands each transaction to any server connection (PgBouncer in
    # transaction mode): no statement is cached on a connection, and each prepared statement
    # gets a name of its own, so that two clients never meet the other's on a server
    # connection (deploy/README.md, PgBouncer).
    database_prepared_statements: bool = True
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "agentrun:queue"
    media_root: Path = Path("media")

    default_model: str = "openai:gpt-4o-mini"
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AGENTRUN_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AGENTRUN_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTRUN_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    )
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTRUN_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
    )
    # An agent's own provider key is read from the environment variable its model settings
    # name (``api_key_env``), which must start with this prefix: an admin cannot have any other
    # variable of the service (AGENTRUN_DATABASE_URL, say) sent to a URL of his choice.
    model_key_env_prefix: str = Field(default="AGENTRUN_AGENT_KEY_", min_length=1)

    worker_concurrency: int = 500
    # A worker is woken when a job is enqueued (workers/process/execution_worker.py) and polls
    # this often besides: the fallback for a wake-up lost, and how soon an abort is seen at worst.
    # Each poll is a few Redis round trips (every 50 ms cost an idle worker ~3% of a core).
    worker_poll_delay_seconds: float = Field(default=0.5, gt=0)
    execution_timeout_seconds: float = 600.0
    # Fair share of the fleet (app/executions/dispatch.py, docs/fair-share.md). When executions
    # wait for a slot, the next free one goes to the key (the submitting user, or the agent's
    # dataset) with the least running and recently released work divided by its weight; off:
    # first in, first out, every execution enqueued at once.
    fair_share: bool = True
    fair_share_key: Literal["user", "dataset"] = "user"
    # How fast released work is forgotten: its count halves every this many seconds.
    fair_share_half_life_seconds: float = Field(default=60.0, gt=0)
    # The share of releases kept for batch executions while interactive ones wait too.
    fair_share_batch_share: float = Field(default=0.1, gt=0, lt=1)
    # Worker resilience (workers/run/heartbeat.py, workers/background/reconciler.py): a running
    # execution's heartbeat is bumped every heartbeat_seconds; one older than
    # stale_after_seconds (its worker died) is run again by the reconciler, which runs every
    # reconcile_seconds.
    heartbeat_seconds: float = 10.0
    reconcile_seconds: float = 15.0
    stale_after_seconds: float = 30.0
    # How long a worker retries a write while PostgreSQL is unreachable before giving up.
    worker_database_retry_seconds: float = 120.0
    # On SIGTERM, how long running executions may take to finish before they are handed to
    # another worker; unset: the longest execution time limit + 90 s.
    worker_shutdown_grace_seconds: float | None = None
    # Model provider calls: retries of 429, 5xx, timeouts (with backoff, honouring
    # Retry-After) and the time limit of one request.
    model_max_retries: int = 2
    model_timeout_seconds: float = 120.0

    max_upload_bytes: int = 10 * 1024 * 1024
    max_upload_files: int = 10
    # Text extraction of uploads (app/conversations/extraction_process.py), in a child process
    # killed past its wall time or CPU time; memory, pages, characters and the decompressed
    # size of each PDF stream are capped. At most extraction_concurrency run at once per process.
    extraction_timeout_seconds: float = 30.0
    extraction_cpu_seconds: int = 10
    extraction_memory_bytes: int = 512 * 1024 * 1024
    extraction_max_pages: int = 500
    extraction_max_chars: int = 1_000_000
    extraction_max_decompressed_bytes: int = 5_000_000
    extraction_concurrency: int = 2
    # Largest request body; unset: every upload at its limit plus 1 MiB for the rest.
    max_request_bytes: int | None = None
    # POST requests one token may make a minute, counted in Redis; 0 disables the limit.
    rate_limit_per_minute: int = 120
    # Redis down when an execution is submitted: false stores it and answers 202 (a worker's
    # reconciler enqueues it later); true answers 503 and stores nothing.
    reject_when_queue_down: bool = False
    # An MCP tools/call (and an A2A send without return_immediately) waits this long for the
    # execution to end, then answers its id and status for the caller to follow.
    protocol_wait_seconds: float = Field(default=60.0, ge=0)
    # An A2A CancelTask on a running task waits this long for its worker to stop it and
    # answers `canceled`; past it, the task as it stands (`working`), to follow by get/subscribe.
    protocol_cancel_wait_seconds: float = Field(default=5.0, ge=0)

    # An execution's `input`, as compact JSON (a JSON start body may be 64 KiB more).
    max_input_bytes: int = 256 * 1024
    # A batch (app/batches): at most this many items, in a body of at most this many bytes
    # (JSON, or the multipart form with its JSONL file); past either, a 413 naming the limit.
    max_batch_items: int = Field(default=10_000, ge=1)
    max_batch_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Schedules (app/schedules): how many one user may have; how often each worker looks for
    # due ticks (a tick runs at most this late).
    max_schedules_per_user: int = Field(default=100, ge=1)
    schedule_poll_seconds: float = Field(default=5.0, gt=0)
    # Levels of arrays and objects in an `input` or a product's `properties`.
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    # In a list page, an execution's `input` or `result` whose JSON is larger than this is
    # replaced by a marker (the execution's own page shows it whole).
    list_max_field_bytes: int = 64 * 1024

    # An execution's event stream sends a comment this often while nothing happens, so that
    # gateways and clients keep the connection open.
    event_stream_keep_alive_seconds: float = Field(default=15.0, gt=0)

    # Webhooks (app/webhooks, workers/background/webhook_delivery.py): seconds between a failed
    # attempt and the next, one entry per retry ("5,300,1800"); after the last, the delivery fails.
    webhook_retry_schedule: Annotated[list[float], NoDecode] = [5, 300, 1800, 7200, 18000, 36000]
    # Send to URLs resolving to loopback, private or link-local addresses (tests, closed
    # networks); off, they are refused.
    webhook_allow_private_networks: bool = False
    # Attempts under way at once per endpoint in one worker (a dead receiver holds no more),
    # and in all.
    webhook_concurrency_per_endpoint: int = Field(default=4, ge=1)
    webhook_concurrency: int = Field(default=100, ge=1)
    # How often each worker looks for due deliveries and undispatched events.
    webhook_poll_seconds: float = Field(default=1.0, gt=0)

    # The console (/ui/): the key signing its session cookies, shared by every API process
    # (unset: a random key per process, so sessions do not survive a restart nor move between
    # replicas), and how long a sign-in lasts.
    console_secret: SecretStr | None = None
    # Keys sealing the secrets the service stores (app/core/encryption.py): URL-safe base64 of
    # 32 bytes each, comma-separated; the first seals, all open (docs/security.md, rotation).
    encryption_keys: Annotated[list[SecretStr], NoDecode] = []
    console_session_hours: float = Field(default=12.0, gt=0)

    page_size: int = 25
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # The operator port: the API and each worker serve /metrics there, away from the public
    # port (the gateway routes only that one); 0 turns it off.
    metrics_port: int = Field(default=9100, ge=0, le=65535)
    # True: the API's public port serves /metrics too, as it did before the operator port.
    metrics_on_api_port: bool = False
    # Set: /metrics answers only scrapes presenting it (Bearer or Token), on either port.
    metrics_token: SecretStr | None = None
    # The API's gauges read from PostgreSQL are refreshed at most this often, per process.
    metrics_refresh_seconds: float = Field(default=15.0, ge=0)
    cors_origins: list[str] = []
    # Served below this path prefix by a gateway that strips it (e.g. "/agentrun").
    root_path: str = ""
    # Addresses or networks (10.42.0.0/16) whose X-Forwarded-Proto/-Host/-For/-Prefix headers
    # are believed: the gateway's only. "*" trusts any peer, so any client could spoof them.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]

    # Tracing (docs/tracing.md; switched on by the OTEL_ variables, not by these): export
    # prompts, completions and tool arguments too; the console links an execution's trace id
    # to this URL, its "{trace_id}" replaced (e.g. "http://jaeger:16686/trace/{trace_id}").
    trace_content: bool = False
    trace_url_template: str | None = None

    @field_validator("trace_url_template")
    @classmethod
    def _names_the_trace_id(cls, template: str | None) -> str | None:
        if template is not None and "{trace_id}" not in template:
            raise ValueError('must contain "{trace_id}"')
        return template

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _comma_separated_seconds(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _comma_separated_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _keys_of_32_bytes(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            parse_key(key.get_secret_value())
        return keys

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, entries: list[str]) -> list[str]:
        trusted_networks(entry for entry in entries if entry != "*")
        return entries

    @property
    def listen_url(self) -> str:
        """Where the event listener connects: ``database_listen_url``, else ``database_url``."""
        return self.database_listen_url or self.database_url

    @property
    def keyring(self) -> Keyring:
        """The keys of ``encryption_keys``, the sealing one first."""
        return keyring_of(tuple(key.get_secret_value() for key in self.encryption_keys))

    @property
    def request_body_limit(self) -> int:
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        return self.max_upload_bytes * self.max_upload_files + 1024 * 1024


@lru_cache
def get_settings() -> Settings:
    return Settings()
