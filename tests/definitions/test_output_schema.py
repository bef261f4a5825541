"""A structured task's output_schema is refused at submit when it could stall a worker: remote
or file references, patterns that need backtracking, too deep or too large once expanded."""

import socket
from typing import Any

import pytest
from httpx import AsyncClient, Response

from tests.factories import Factory


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def doubling(levels: int) -> dict[str, Any]:
    """Small, but each definition refers twice to the next: 2**levels once expanded."""
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"a": {"$ref": "#/$defs/d0"}}, "$defs": defs}


async def submit(client: AsyncClient, factory: Factory, schema: Any) -> Response:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    return await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json={
            "execution_key": "structured-task",
            "input": {"instructions": "Describe Ada.", "output_schema": schema},
        },
        headers=owner.headers,
    )


def refusal(response: Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["input"]
    assert list(body["input"]) == ["output_schema"]
    message: str = body["input"]["output_schema"]
    return message


@pytest.mark.parametrize(
    ("keyword", "target"),
    [
        ("$ref", "http://127.0.0.1:{port}/person.json"),
        ("$ref", "file:///etc/passwd"),
        ("$ref", "person.json"),
        ("$dynamicRef", "http://127.0.0.1:{port}/meta#node"),
    ],
)
async def test_a_reference_outside_the_schema_is_400_and_nothing_is_fetched(
    client: AsyncClient, factory: Factory, keyword: str, target: str
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        target = target.format(port=listener.getsockname()[1])
        schema = {"type": "object", "properties": {"person": {keyword: target}}}

        response = await submit(client, factory, schema)

        message = refusal(response)
        assert f"{keyword} {target!r} at $.properties.person" in message
        assert "only local references" in message
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


async def test_a_remote_base_uri_or_meta_schema_is_400(
    client: AsyncClient, factory: Factory
) -> None:
    nested_id = {"properties": {"a": {"$id": "http://x.test/a", "type": "string"}}}
    remote_meta = {"$schema": "http://x.test/meta", "type": "object"}

    assert "has $id at $.properties.a" in refusal(await submit(client, factory, nested_id))
    assert "Unknown meta-schema" in refusal(await submit(client, factory, remote_meta))


async def test_local_references_are_accepted(client: AsyncClient, factory: Factory) -> None:
    schema = {
        "$id": "https://example.test/person.json",
        "type": "object",
        "properties": {"name": {"$ref": "#/$defs/name"}, "friend": {"$ref": "#"}},
        "$defs": {"name": {"type": "string", "pattern": "^(a+)+$"}},
    }

    response = await submit(client, factory, schema)

    assert response.status_code == 202, response.text
    assert response.json()["input"]["output_schema"] == schema


@pytest.mark.parametrize("pattern", ["(?<=a)b", r"^(a)\1$", "^(?!x)"])
async def test_a_pattern_that_needs_backtracking_is_400(
    client: AsyncClient, factory: Factory, pattern: str
) -> None:
    schema = {"type": "object", "patternProperties": {pattern: {"type": "string"}}}

    message = refusal(await submit(client, factory, schema))

    assert message.startswith("output_schema is not a valid JSON schema at $.patternProperties")
    assert "lookaround and backreferences are not supported" in message


async def test_an_invalid_schema_is_400(client: AsyncClient, factory: Factory) -> None:
    message = refusal(await submit(client, factory, {"type": "thing"}))

    assert message.startswith('output_schema is not a valid JSON schema at $.type: "thing"')


async def test_a_schema_nested_260_deep_is_400(client: AsyncClient, factory: Factory) -> None:
    # The request body's own depth limit (AGENTRUN_MAX_JSON_DEPTH) refuses it before the
    # schema is looked at.
    response = await submit(client, factory, nested(260))

    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error: Nested too deep: the limit is 64 levels of arrays and objects."
    }


async def test_a_schema_whose_references_expand_exponentially_is_400(
    client: AsyncClient, factory: Factory
) -> None:
    message = refusal(await submit(client, factory, doubling(30)))

    assert message == "output_schema expands to more than 20000 JSON values through its $refs"


async def test_a_schema_with_too_many_patterns_once_expanded_is_400(
    client: AsyncClient, factory: Factory
) -> None:
    # 20 patterns, written once and repeated 10 times through the references: 220.
    schema = {
        "type": "array",
        "items": {"allOf": [{"$ref": "#/$defs/word"}] * 10},
        "$defs": {"word": {"allOf": [{"pattern": f"^[a-z]{{{n}}}"} for n in range(20)]}},
    }

    message = refusal(await submit(client, factory, schema))

    assert message == "output_schema has more than 200 patterns (counting those its $refs repeat)"
    schema["items"] = {"allOf": [{"$ref": "#/$defs/word"}] * 9}
    assert (await submit(client, factory, schema)).status_code == 202
