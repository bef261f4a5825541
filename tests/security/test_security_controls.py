"""Controls of a self-hosting team: removing a dataset member, disabling a user, and users
revoking their own tokens. Each takes effect from the next request on."""

from httpx import AsyncClient

from tests.factories import Account, Factory

INVALID_TOKEN = {"detail": "Invalid token."}


# Removing a dataset member


async def test_a_removed_member_no_longer_reaches_the_datasets_agents(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, bob = await factory.account(), await factory.account()
    dataset = await factory.dataset(alice, bob)
    agent = await factory.agent(dataset)
    earlier = await factory.execution(agent, alice)
    start = f"/api/agents/{agent.id}/agentic-executions/"
    assert (await client.get(f"/api/agents/{agent.id}/", headers=alice.headers)).status_code == 200

    removed = await client.delete(
        f"/api/datasets/{dataset.id}/members/{alice.user.id}/", headers=admin.headers
    )

    assert removed.status_code == 204
    assert removed.content == b""
    for url in (
        f"/api/agents/{agent.id}/",
        f"/api/agents/{agent.id}/agentic-execution-definitions/",
        f"/api/datasets/{dataset.id}/products/",
    ):
        response = await client.get(url, headers=alice.headers)
        assert response.status_code == 404, url
    refused = await client.post(
        start, json={"execution_key": "catalog-enrichment"}, headers=alice.headers
    )
    assert refused.status_code == 404
    assert refused.json() == {"detail": "Agent not found."}
    assert (await client.get("/api/agents/", headers=alice.headers)).json() == []
    assert (await client.get("/api/datasets/", headers=alice.headers)).json() == []
    # What he started before stays his to read; the other member is untouched.
    mine = await client.get(f"/api/agentic-executions/{earlier.id}/", headers=alice.headers)
    assert mine.status_code == 200
    kept = await client.post(
        start, json={"execution_key": "catalog-enrichment"}, headers=bob.headers
    )
    assert kept.status_code == 202


async def test_removing_a_member_is_for_admins_and_names_what_is_missing(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, bob = await factory.account(), await factory.account()
    dataset = await factory.dataset(alice)

    by_member = await client.delete(
        f"/api/datasets/{dataset.id}/members/{alice.user.id}/", headers=alice.headers
    )
    anonymous = await client.delete(f"/api/datasets/{dataset.id}/members/{alice.user.id}/")
    no_dataset = await client.delete(
        f"/api/datasets/999/members/{alice.user.id}/", headers=admin.headers
    )
    no_user = await client.delete(f"/api/datasets/{dataset.id}/members/999/", headers=admin.headers)
    not_member = await client.delete(
        f"/api/datasets/{dataset.id}/members/{bob.user.id}/", headers=admin.headers
    )

    assert by_member.status_code == 403
    assert anonymous.status_code == 401
    assert no_dataset.status_code == 404
    assert no_dataset.json() == {"detail": "Dataset not found."}
    assert no_user.json() == {"detail": "User not found."}
    assert not_member.status_code == 404
    assert not_member.json() == {"detail": "The user is not a member of this dataset."}
    assert (await client.get("/api/datasets/", headers=alice.headers)).json()[0]["id"] == dataset.id


# Disabling a user


async def _set_active(client: AsyncClient, admin: Account, user: Account, active: bool) -> int:
    response = await client.patch(
        f"/api/users/{user.user.id}/", json={"is_active": active}, headers=admin.headers
    )
    return response.status_code


async def test_a_disabled_users_tokens_are_refused_at_once(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, bob = await factory.account(username="alice"), await factory.account()
    agent = await factory.agent(await factory.dataset(alice, bob))
    second = (
        await client.post(f"/api/users/{alice.user.id}/tokens/", headers=admin.headers)
    ).json()["key"]
    earlier = await factory.execution(agent, alice)
    assert (await client.get("/api/users/me/", headers=alice.headers)).status_code == 200

    disabled = await client.patch(
        f"/api/users/{alice.user.id}/", json={"is_active": False}, headers=admin.headers
    )

    assert disabled.status_code == 200
    assert disabled.json() == {
        "id": alice.user.id,
        "username": "alice",
        "is_admin": False,
        "is_active": False,
    }
    for headers in (alice.headers, {"Authorization": f"Token {second}"}):
        for method, url in (
            ("GET", "/api/users/me/"),
            ("GET", f"/api/agents/{agent.id}/"),
            ("GET", f"/api/agentic-executions/{earlier.id}/"),
            ("GET", "/api/agentic-executions/"),
            ("POST", f"/api/agents/{agent.id}/agentic-executions/"),
        ):
            response = await client.request(
                method, url, json={"execution_key": "catalog-enrichment"}, headers=headers
            )
            assert response.status_code == 401, (method, url)
            assert response.json() == INVALID_TOKEN
    assert (await client.get("/api/users/me/", headers=bob.headers)).status_code == 200
    listed = (await client.get("/api/users/", headers=admin.headers)).json()
    assert [u["is_active"] for u in listed if u["id"] == alice.user.id] == [False]

    assert await _set_active(client, admin, alice, True) == 200
    assert (await client.get("/api/users/me/", headers=alice.headers)).status_code == 200


async def test_an_admin_cannot_disable_himself_and_users_cannot_disable_anyone(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, bob = await factory.account(), await factory.account()

    himself = await client.patch(
        f"/api/users/{admin.user.id}/", json={"is_active": False}, headers=admin.headers
    )
    by_user = await client.patch(
        f"/api/users/{bob.user.id}/", json={"is_active": False}, headers=alice.headers
    )
    unknown = await client.patch(
        "/api/users/999/", json={"is_active": False}, headers=admin.headers
    )
    bad_body = await client.patch(
        f"/api/users/{bob.user.id}/", json={"is_active": "soon"}, headers=admin.headers
    )
    other_field = await client.patch(
        f"/api/users/{bob.user.id}/", json={"is_admin": True}, headers=admin.headers
    )

    assert himself.status_code == 400
    assert himself.json() == {"is_active": "You cannot disable your own user."}
    assert by_user.status_code == 403
    assert unknown.status_code == 404
    assert bad_body.status_code == 400
    assert "is_active" in bad_body.json()
    assert other_field.status_code == 400
    assert (await client.get("/api/users/me/", headers=admin.headers)).status_code == 200
    assert (await client.get("/api/users/me/", headers=bob.headers)).json()["is_admin"] is False


# Users revoking their own tokens


async def test_a_user_lists_his_own_tokens_without_their_keys(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, bob = await factory.account(), await factory.account()
    await client.post(
        f"/api/users/{alice.user.id}/tokens/", json={"name": "ci"}, headers=admin.headers
    )

    mine = await client.get("/api/tokens/", headers=alice.headers)
    bobs = await client.get("/api/tokens/", headers=bob.headers)

    assert mine.status_code == 200
    assert [token["name"] for token in mine.json()] == ["default", "ci"]
    assert set(mine.json()[0]) == {
        "id",
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    assert alice.token not in mine.text
    assert len(bobs.json()) == 1
    assert bobs.json()[0]["id"] not in {token["id"] for token in mine.json()}


async def test_a_user_revokes_his_own_token_and_it_is_refused_at_once(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice = await factory.account()
    spare = (await client.post(f"/api/users/{alice.user.id}/tokens/", headers=admin.headers)).json()
    spare_headers = {"Authorization": f"Token {spare['key']}"}
    assert (await client.get("/api/users/me/", headers=spare_headers)).status_code == 200

    revoked = await client.delete(f"/api/tokens/{spare['id']}/", headers=alice.headers)
    again = await client.delete(f"/api/tokens/{spare['id']}/", headers=alice.headers)

    assert revoked.status_code == again.status_code == 204
    refused = await client.get("/api/users/me/", headers=spare_headers)
    assert refused.status_code == 401
    assert refused.json() == INVALID_TOKEN
    assert (await client.get("/api/users/me/", headers=alice.headers)).status_code == 200
    listed = {t["id"]: t for t in (await client.get("/api/tokens/", headers=alice.headers)).json()}
    assert listed[spare["id"]]["revoked_at"] is not None
    # The token of the request may revoke itself: the next request with it is refused.
    own_id = next(i for i, t in listed.items() if t["revoked_at"] is None)
    assert (await client.delete(f"/api/tokens/{own_id}/", headers=alice.headers)).status_code == 204
    assert (await client.get("/api/tokens/", headers=alice.headers)).status_code == 401


async def test_another_users_token_is_404_to_a_user_and_revocable_by_an_admin(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    alice, bob = await factory.account(), await factory.account()
    bobs_id = (await client.get("/api/tokens/", headers=bob.headers)).json()[0]["id"]

    by_alice = await client.delete(f"/api/tokens/{bobs_id}/", headers=alice.headers)
    unknown = await client.delete("/api/tokens/999/", headers=alice.headers)
    still = await client.get("/api/users/me/", headers=bob.headers)
    by_admin = await client.delete(f"/api/tokens/{bobs_id}/", headers=admin.headers)

    assert by_alice.status_code == unknown.status_code == 404
    assert by_alice.json() == unknown.json() == {"detail": "Token not found."}
    assert still.status_code == 200
    assert by_admin.status_code == 204
    assert (await client.get("/api/users/me/", headers=bob.headers)).status_code == 401
