from pydantic import BaseModel, Field


class UserOut(BaseModel):
    id: int = Field(examples=[3])
    username: str = Field(examples=["alice"])
    is_admin: bool = Field(examples=[False])
