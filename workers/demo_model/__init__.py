"""``demo``: a deterministic offline model for a first run without any provider key.

No LLM is involved: a pydantic-ai ``FunctionModel`` reads the tools an execution offers and
drives them as a careful agent would, deciding from what the conversation holds so far. It
reads the attached files, then per type:

- catalog products (``read_products`` / ``update_product``): reads the products, writes a name,
  description and properties built from the catalog's fields and the files' lines about each
  SKU, and answers every SKU updated;
- stock (``update_stock_levels``): finds SKU/quantity line items in the files it read, sends
  them to the tool and answers what it returned;
- anything else: answers an instance of the result tool's schema built from the instructions.

Every result says it was produced by this model (``NOTE``). When a check rejects an answer it
stops the execution with the reason instead of guessing again.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from workers.demo_model.catalog import product_updates, requested_skus
from workers.demo_model.instances import instance_of
from workers.demo_model.invoices import line_items

MODEL_NAME = "demo"
NOTE = "Produced by agentrun's offline demo model: no LLM was used."
STOP_TOOL = "stop_execution"


@dataclass
class Conversation:
    """What the run holds so far, read from its messages."""

    prompt: str = ""
    # Tool name -> the results of its calls, in order (with the arguments of each call).
    results: dict[str, list[tuple[dict[str, Any], Any]]] = field(default_factory=dict)
    # The last request's rejection of an answer: (tool name, what was wrong).
    retried: tuple[str | None, str] | None = None

    def called(self, tool: str) -> bool:
        return tool in self.results

    def returned(self, tool: str) -> list[Any]:
        return [content for _, content in self.results.get(tool, [])]


def _args(part: ToolCallPart) -> dict[str, Any]:
    args = part.args
    if isinstance(args, str):
        loaded = json.loads(args or "{}")
        return loaded if isinstance(loaded, dict) else {}
    return dict(args or {})


def read_conversation(messages: list[ModelMessage]) -> Conversation:
    conversation = Conversation()
    calls: dict[str, ToolCallPart] = {}
    for message in messages:
        if isinstance(message, ModelResponse):
            calls.update({p.tool_call_id: p for p in message.parts if isinstance(p, ToolCallPart)})
            continue
        conversation.retried = None
        for part in message.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                conversation.prompt += part.content + "\n"
            elif isinstance(part, ToolReturnPart):
                call = calls.get(part.tool_call_id)
                arguments = _args(call) if call is not None else {}
                conversation.results.setdefault(part.tool_name, []).append(
                    (arguments, part.content)
                )
            elif isinstance(part, RetryPromptPart):
                conversation.retried = (part.tool_name, part.model_response())
    return conversation


def _call(tool: str, **arguments: Any) -> ToolCallPart:
    return ToolCallPart(tool_name=tool, args=arguments)


def _files_to_read(conversation: Conversation, tools: set[str]) -> list[ToolCallPart]:
    """The reads still to do: list the files, then read each text file once."""
    if "list_files" not in tools or "read_file" not in tools:
        return []
    if not conversation.called("list_files"):
        return [_call("list_files")]
    listed = conversation.returned("list_files")[-1]
    read = {arguments.get("filename") for arguments, _ in conversation.results.get("read_file", [])}
    return [
        _call("read_file", filename=entry["filename"])
        for entry in (listed if isinstance(listed, list) else [])
        if isinstance(entry, dict)
        and entry.get("filename") not in read
        and not str(entry.get("content_type", "")).startswith("image/")
    ]


def file_texts(conversation: Conversation) -> list[str]:
    return [text for text in conversation.returned("read_file") if isinstance(text, str)]


def _answer(info: AgentInfo, value: Any) -> ModelResponse:
    if info.output_tools and isinstance(value, dict):
        return ModelResponse(parts=[_call(info.output_tools[0].name, **value)])
    return ModelResponse(parts=[TextPart(json.dumps(value, ensure_ascii=False))])


def _stop(info: AgentInfo, reason: str) -> ModelResponse:
    if any(tool.name == STOP_TOOL for tool in info.function_tools):
        return ModelResponse(parts=[_call(STOP_TOOL, reason=reason)])
    return ModelResponse(parts=[TextPart(reason)])


def _catalog_step(conversation: Conversation, info: AgentInfo) -> ModelResponse:
    skus = requested_skus(conversation.prompt)
    if not conversation.called("read_products"):
        return ModelResponse(parts=[_call("read_products", skus=skus)])
    updated = {
        arguments.get("sku") for arguments, _ in conversation.results.get("update_product", [])
    }
    to_write = [sku for sku in skus if sku not in updated]
    if to_write:
        updates, missing = product_updates(
            to_write, conversation.returned("read_products"), file_texts(conversation), NOTE
        )
        if missing:
            return _stop(
                info, f"No product data found for SKU {missing[0]} in any available resource."
            )
        return ModelResponse(parts=[_call("update_product", **update) for update in updates])
    message = f"Product updated successfully ({NOTE})"
    return _answer(info, dict.fromkeys(skus, message))


def _stock_step(conversation: Conversation, info: AgentInfo) -> ModelResponse:
    if not conversation.called("update_stock_levels"):
        items = line_items(file_texts(conversation))
        if not items:
            return _stop(info, "No line items with a SKU and a quantity found in the invoices.")
        return ModelResponse(parts=[_call("update_stock_levels", items=items)])
    reported = conversation.returned("update_stock_levels")[-1]
    return _answer(info, reported if isinstance(reported, dict) else {})


def _instructions(prompt: str) -> str:
    """The task as the user gave it: the instructions' paragraph, else the whole prompt."""
    marker = "Instructions:\n"
    if marker in prompt:
        return prompt.split(marker, 1)[1].split("\n\n", 1)[0].strip()
    return prompt.strip()


def demo_step(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The next response of the demo model."""
    conversation = read_conversation(messages)
    tools = {tool.name for tool in info.function_tools}
    if conversation.retried is not None and conversation.retried[0] not in tools:
        # The answer was rejected: giving it again would not help.
        reason = conversation.retried[1].strip().splitlines()[0]
        return _stop(info, f"The offline demo model cannot satisfy the checks: {reason}")
    if not info.output_tools and not info.function_tools:
        # Asked for a summary of a failure.
        return ModelResponse(parts=[TextPart(f"The checks rejected the answer. ({NOTE})")])
    reads = _files_to_read(conversation, tools)
    if reads:
        return ModelResponse(parts=reads)
    if {"read_products", "update_product"} <= tools:
        return _catalog_step(conversation, info)
    if "update_stock_levels" in tools:
        return _stock_step(conversation, info)
    schema = info.output_tools[0].parameters_json_schema if info.output_tools else {}
    return _answer(info, instance_of(schema, _instructions(conversation.prompt), NOTE))


def demo_model() -> FunctionModel:
    return FunctionModel(demo_step, model_name=MODEL_NAME)
