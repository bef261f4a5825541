from app.agent_types.invoice_scanning.definition import InvoiceScanning

definition = InvoiceScanning()

__all__ = ["InvoiceScanning", "definition"]
