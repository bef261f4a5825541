from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.auth.models import ApiToken, User
from app.auth.service import NewToken
from app.core.schemas import Timestamp

Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)]
TokenName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class UserOut(BaseModel):
    id: int = Field(examples=[3])
    username: str = Field(examples=["alice"])
    is_admin: bool = Field(examples=[False])
    is_active: bool = Field(
        description="False: disabled by an admin; the user's tokens are refused.", examples=[True]
    )


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username = Field(examples=["alice"])
    is_admin: bool = Field(default=False, description="Admins manage users, datasets, agents.")
    token_name: TokenName = Field(default="default", description="Name of the first token.")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: bool = Field(
        description="false disables the user: his tokens are refused (401) from the next "
        "request on; true enables him again.",
        examples=[False],
    )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenName = Field(default="default", examples=["ci"])


class TokenOut(BaseModel):
    """A token as listed: never its key, nor the key's hash."""

    id: int = Field(examples=[5])
    name: str = Field(examples=["ci"])
    prefix: str = Field(
        description="The first characters of the key, to recognise it.", examples=["ar_Xf3kQ9a"]
    )
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="Within a minute.")
    revoked_at: Timestamp | None


class NewTokenOut(TokenOut):
    key: str = Field(
        description="The raw key, for `Authorization: Token <key>`. Shown only in this answer.",
        examples=["ar_Xf3kQ9a…"],
    )


class NewUserOut(BaseModel):
    user: UserOut
    token: NewTokenOut


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id, username=user.username, is_admin=user.is_admin, is_active=user.is_active
    )


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)


def new_token_out(new: NewToken) -> NewTokenOut:
    return NewTokenOut(**token_out(new.token).model_dump(), key=new.key)
