"""The patron's contact: states and the contact rule (:mod:`.state`), and every
transition of a patron's address (:mod:`.changes`). Pure: no Redis, no SMTP."""

from .state import (CALL_REASON_JA, CallReason, Confirmation, Contact, ContactState, Decision,
                    decide_contact)

__all__ = ["CALL_REASON_JA", "CallReason", "Confirmation", "Contact", "ContactState",
           "Decision", "decide_contact"]
