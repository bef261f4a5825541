"""Users and tokens: created by admins, listed without secrets, revoked with immediate effect."""

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service
from app.core.config import Settings
from app.core.errors import Invalid
from tests.cli.test_cli import agentrun, last_line
from tests.factories import Factory

TOKEN_FIELDS = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


async def test_an_admin_creates_a_user_whose_first_token_works(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)

    response = await client.post(
        "/api/users/", json={"username": "grace", "token_name": "laptop"}, headers=admin.headers
    )

    assert response.status_code == 201
    body = response.json()
    assert body["user"]["username"] == "grace"
    assert body["user"]["is_admin"] is False
    assert body["token"]["name"] == "laptop"
    assert body["token"]["key"].startswith(body["token"]["prefix"])
    me = await client.get(
        "/api/users/me/", headers={"Authorization": f"Token {body['token']['key']}"}
    )
    assert me.json() == body["user"]
    listed = await client.get("/api/users/", headers=admin.headers)
    assert "grace" in [user["username"] for user in listed.json()]


async def test_token_lists_show_neither_keys_nor_hashes(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice = await factory.account()
    created = await client.post(
        f"/api/users/{alice.user.id}/tokens/", json={"name": "ci"}, headers=admin.headers
    )

    listed = await client.get(f"/api/users/{alice.user.id}/tokens/", headers=admin.headers)

    assert created.status_code == 201
    assert list(created.json()) == [*TOKEN_FIELDS, "key"]
    assert listed.status_code == 200
    assert [token["name"] for token in listed.json()] == ["default", "ci"]
    for token in listed.json():
        assert list(token) == TOKEN_FIELDS
    assert created.json()["key"] not in listed.text
    assert alice.token not in listed.text


async def test_a_revoked_token_is_refused_at_once(client: AsyncClient, factory: Factory) -> None:
    admin = await factory.account(admin=True)
    alice = await factory.account()
    assert (await client.get("/api/users/me/", headers=alice.headers)).status_code == 200
    token_id = (
        await client.get(f"/api/users/{alice.user.id}/tokens/", headers=admin.headers)
    ).json()[0]["id"]

    revoked = await client.post(
        f"/api/users/{alice.user.id}/tokens/{token_id}/revoke/", headers=admin.headers
    )
    again = await client.post(
        f"/api/users/{alice.user.id}/tokens/{token_id}/revoke/", headers=admin.headers
    )
    refused = await client.get("/api/users/me/", headers=alice.headers)

    assert revoked.status_code == again.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid token."}
    assert refused.headers["WWW-Authenticate"] == "Token"


async def test_a_token_is_revoked_only_through_its_own_user(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, bob = await factory.account(), await factory.account()
    bobs = (await client.get(f"/api/users/{bob.user.id}/tokens/", headers=admin.headers)).json()

    response = await client.post(
        f"/api/users/{alice.user.id}/tokens/{bobs[0]['id']}/revoke/", headers=admin.headers
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "Token not found."}
    assert (await client.get("/api/users/me/", headers=bob.headers)).status_code == 200


@pytest.mark.parametrize("username", ["", "   ", "x" * 151])
async def test_a_username_of_the_wrong_length_is_400(
    client: AsyncClient, factory: Factory, username: str
) -> None:
    admin = await factory.account(admin=True)

    response = await client.post("/api/users/", json={"username": username}, headers=admin.headers)

    assert response.status_code == 400
    assert list(response.json()) == ["username"]


async def test_a_taken_username_is_409(client: AsyncClient, factory: Factory) -> None:
    admin = await factory.account(admin=True, username="root")

    response = await client.post("/api/users/", json={"username": "root"}, headers=admin.headers)

    assert response.status_code == 409
    assert response.json() == {"username": "A user named 'root' already exists."}


@pytest.mark.parametrize("username", ["", "x" * 151, "tab\there"])
async def test_the_service_itself_refuses_bad_usernames(
    session: AsyncSession, username: str
) -> None:
    with pytest.raises(Invalid) as error:
        await service.create_user(session, username)

    assert error.value.body == {"username": "A username has 1 to 150 printable characters."}


async def test_cli_lists_tokens_and_revokes_one_by_prefix(
    client: AsyncClient, settings: Settings
) -> None:
    key = last_line((await agentrun(settings.database_url, "users", "create", "heidi")).stdout)
    await agentrun(settings.database_url, "tokens", "create", "heidi", "--name", "ci")

    listed = await agentrun(settings.database_url, "tokens", "list", "heidi")
    revoked = await agentrun(settings.database_url, "tokens", "revoke", key[:10])
    listed_after = await agentrun(settings.database_url, "tokens", "list", "heidi")

    assert listed.code == 0, listed.stderr
    assert key[:10] in listed.stdout
    assert key not in listed.stdout
    assert "default" in listed.stdout
    assert "ci" in listed.stdout
    assert revoked.code == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    default_row = next(line for line in listed_after.stdout.splitlines() if key[:10] in line)
    assert default_row.rstrip()[-1].isdigit()  # a revocation time fills the last column
    me = await client.get("/api/users/me/", headers={"Authorization": f"Token {key}"})
    assert me.status_code == 401


async def test_cli_revokes_by_id_and_reports_an_unknown_token(settings: Settings) -> None:
    await agentrun(settings.database_url, "users", "create", "ivan")

    by_id = await agentrun(settings.database_url, "tokens", "revoke", "1")
    unknown = await agentrun(settings.database_url, "tokens", "revoke", "ar_nothing")

    assert by_id.code == 0, by_id.stderr
    assert "'ivan' revoked" in by_id.stdout
    assert unknown.code == 1
    assert "ar_nothing" in unknown.stderr
