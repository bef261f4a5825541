from app.agent_types.structured_task.definition import StructuredTask

definition = StructuredTask()

__all__ = ["StructuredTask", "definition"]
