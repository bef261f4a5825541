"""What members are told about an error that ended a run, and what only the worker log keeps.

A model provider's error body may hold anything its operator let slip ("INTERNAL-ONLY: db
password=…"), and it reaches every member of the dataset through ``failure_explanation`` and the
trace. So an HTTP error is told as its status and a short reason of our own; the body goes to
the worker log at DEBUG. Any URL an explanation holds loses its credentials
(``app.core.redaction``).
"""

import logging

from pydantic_ai import UnexpectedModelBehavior
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelOverloadedError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelServerError,
    ModelUnavailableError,
)

from app.core.database_errors import driver_error
from app.core.redaction import redact_urls_in

logger = logging.getLogger(__name__)

# A message of a provider error that carries no HTTP status is one short line from the SDK
# ("Connection error.", "Request timed out."); anything longer is cut.
MAX_MESSAGE_CHARS = 200
# Most specific first: a context-window error is also a rejected request.
_REASONS: tuple[tuple[type[ModelAPIError], str], ...] = (
    (ModelContextWindowExceededError, "the input exceeds the model's context window"),
    (ModelAuthenticationError, "credentials refused"),
    (ModelNotFoundError, "model or URL not found"),
    (ModelQuotaExceededError, "quota exhausted"),
    (ModelRateLimitError, "rate limited"),
    (ModelOverloadedError, "overloaded"),
    (ModelUnavailableError, "unavailable"),
    (ModelServerError, "server error"),
    (ModelRequestRejectedError, "request rejected"),
)


def public_name(exc: BaseException) -> str:
    """The exception's public class name (pydantic-ai raises private subclasses such as
    ``_HTTPModelServerError`` of ``ModelHTTPError``)."""
    return next(
        (c.__name__ for c in type(exc).__mro__ if not c.__name__.startswith("_")),
        type(exc).__name__,
    )


def error_text(exc: BaseException) -> str:
    """``ExceptionType: message``, in full: for our own errors and the logs."""
    # A statement PostgreSQL refused: its own words (``InvalidTextRepresentationError: invalid
    # input syntax for type json`` and its DETAIL), not the statement and its parameters.
    exc = driver_error(exc)
    message = str(exc).strip()
    return f"{public_name(exc)}: {message}" if message else public_name(exc)


def _reason(exc: ModelHTTPError) -> str:
    for category, reason in _REASONS:
        if isinstance(exc, category):
            return reason
    return "server error" if exc.status_code >= 500 else "request refused"


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def public_explanation(exc: BaseException) -> str:
    """What a member may read about ``exc``: no provider body, no URL credentials."""
    name = public_name(exc)
    if isinstance(exc, ModelHTTPError):
        return (
            f"{name}: the model provider answered HTTP {exc.status_code} ({_reason(exc)}) "
            f"for model {exc.model_name}."
        )
    if isinstance(exc, ModelAPIError):
        if exc.body is not None:
            return f"{name}: the model provider reported an error for model {exc.model_name}."
        text = f"{name}: {_first_line(exc.message)}"
    elif isinstance(exc, UnexpectedModelBehavior):
        # Its message is ours or pydantic-ai's; its body is the provider's.
        text = f"{name}: {exc.message}"
    else:
        text = error_text(exc)
    return redact_urls_in(text)


def log_provider_error(execution_id: int, exc: BaseException) -> str:
    """Log a provider's failure (the short form at WARNING, the body at DEBUG) and answer the
    short form."""
    explanation = public_explanation(exc)
    logger.warning("execution %s: %s", execution_id, explanation)
    logger.debug(
        "execution %s: the model provider's error in full: %s", execution_id, error_text(exc)
    )
    return explanation
