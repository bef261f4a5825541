from ticket_triage.definition import TicketTriage

# What the entry point names: one instance, registered once.
definition = TicketTriage()

__all__ = ["TicketTriage", "definition"]
