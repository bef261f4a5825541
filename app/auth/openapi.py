"""What the OpenAPI document says of the user routes' refusals (the users' and the quotas')."""

from typing import Any

from app.core.errors import Forbidden, error_responses

# 401 is documented on every route that takes a token (app/core/openapi.py).
ADMIN_ONLY = error_responses(Forbidden)
USER_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such user.",
        "content": {"application/json": {"example": {"detail": "User not found."}}},
    }
}
