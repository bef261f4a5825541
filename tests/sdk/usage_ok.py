"""A short use of each built-in type with the generated Python client: must type-check."""

from agentrun_client import AuthenticatedClient
from agentrun_client.api.agentic_executions import (
    start_execution_api_agents_agent_id_agentic_executions_post as start,
)
from agentrun_client.models import (
    CatalogEnrichmentAgenticExecutionInput,
    CatalogEnrichmentExecution,
    ExecutionOut,
    InvoiceScanningAgenticExecutionInput,
    InvoiceScanningExecution,
    StartCatalogEnrichment,
    StartInvoiceScanning,
    StartStructuredTask,
    StructuredTaskAgenticExecutionInput,
)

client = AuthenticatedClient(base_url="http://127.0.0.1:8000", token="ar_x", prefix="Token")

catalog = StartCatalogEnrichment(
    execution_key="catalog-enrichment",
    input_=CatalogEnrichmentAgenticExecutionInput(skus=["SKU-001"], additional_instructions="Be"),
)
task = StartStructuredTask(
    execution_key="structured-task",
    input_=StructuredTaskAgenticExecutionInput(instructions="Name three uses of a paperclip."),
)
invoices = StartInvoiceScanning(
    execution_key="invoice-scanning", input_=InvoiceScanningAgenticExecutionInput(skus=None)
)


def messages_of(started: ExecutionOut) -> dict[str, str]:
    typed = CatalogEnrichmentExecution.from_dict(started.to_dict())
    version: str | None = typed.definition_version
    assert version is None or version
    return {} if typed.result is None else typed.result.additional_properties


def stock_messages(started: ExecutionOut) -> dict[str, str]:
    typed = InvoiceScanningExecution.from_dict(started.to_dict())
    return {} if typed.result is None else typed.result.additional_properties


for body in (catalog, task, invoices):
    response = start.sync(1, client=client, body=body)
    if isinstance(response, ExecutionOut):
        print(messages_of(response), stock_messages(response))
