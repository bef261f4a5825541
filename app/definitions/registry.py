"""Discovers execution definitions through the ``agentrun.execution_definitions`` entry points."""

import logging
from functools import lru_cache
from importlib.metadata import entry_points

from app.definitions.base import ExecutionDefinition

ENTRY_POINT_GROUP = "agentrun.execution_definitions"

logger = logging.getLogger(__name__)


@lru_cache
def all_definitions() -> tuple[ExecutionDefinition, ...]:
    found: list[ExecutionDefinition] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry_point.load()
        definition = loaded() if isinstance(loaded, type) else loaded
        if not isinstance(definition, ExecutionDefinition):
            logger.error("entry point %s is not an ExecutionDefinition; ignored", entry_point)
            continue
        found.append(definition)
    return tuple(sorted(found, key=lambda d: (d.agent_type, d.key)))


def definitions_for(agent_type: str) -> list[ExecutionDefinition]:
    return [d for d in all_definitions() if d.agent_type == agent_type]


def find_definition(agent_type: str, key: str) -> ExecutionDefinition | None:
    return next((d for d in definitions_for(agent_type) if d.key == key), None)


def agent_types() -> set[str]:
    return {d.agent_type for d in all_definitions()}
