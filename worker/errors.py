"""One error hierarchy for omitama-notify.

Every message is written for the person who has to act on it (staff, the ILS
integrator, the operator): it says what is wrong and, where it can, what to do.
"""

from __future__ import annotations


class NotifyError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(NotifyError):
    """Raised when settings are missing or invalid; names the key at fault."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"setting {key}: {problem}")


class EventError(NotifyError):
    """Raised when an ILS event fails validation; names the field at fault."""

    def __init__(self, field: str, problem: str, *, event_id: str | None = None,
                 event_type: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.event_id = event_id
        self.event_type = event_type
        super().__init__(f"{field}: {problem}" if field else problem)


class InputError(NotifyError):
    """Raised when a command's input cannot be taken at all (too large, ...); nothing was done."""


class AddressError(NotifyError):
    """Raised when an e-mail address is refused; the message is readable by staff."""


class StoreError(NotifyError):
    """Raised when Redis cannot be reached or holds something unexpected."""


class ReviewError(NotifyError):
    """Raised when a staff action cannot be carried out (not pending, wrong code, …).

    ``kind`` names the case and ``params`` its values, so the staff page words it in
    Japanese from a table (worker/web/wording.py) instead of parsing the English text."""

    def __init__(self, message: str, *, kind: str = "", **params: str | int) -> None:
        self.kind = kind
        self.params = params
        super().__init__(message)


class AlreadyDone(ReviewError):
    """Raised when a staff action finds its own effect already there (it is being repeated:
    a double click, or staff repeating it after :class:`NotConfirmed`): nothing was
    changed and no audit line written. Not a failure: the page shows it as done, the
    command prints it and exits 0."""


class NotConfirmed(NotifyError):
    """Raised after a staff action was written to the primary Redis but fewer replicas
    than ``[staff_writes] replicas`` confirmed it within ``timeout_ms``: a failover now
    could lose it. Every staff action is safe to repeat; repeating it is what to do."""

    def __init__(self, acked: int, wanted: int, timeout_ms: int, why: str = "") -> None:
        self.acked = acked
        self.wanted = wanted
        self.timeout_ms = timeout_ms
        self.why = why
        super().__init__(
            f"written, but only {acked} of {wanted} replica(s) confirmed it within "
            f"{timeout_ms} ms{f' ({why})' if why else ''}: it may be lost if Redis fails "
            "over now; run the same command again (repeating it is safe)")


class DeliveryError(NotifyError):
    """Raised when a message could not be handed to the relay."""

    def __init__(self, message: str, *, code: int | None = None, text: str = "",
                 command: str = "") -> None:
        self.code = code
        self.text = text
        self.command = command
        super().__init__(message)


class TransientDeliveryError(DeliveryError):
    """Raised for failures worth retrying: 4xx replies, refused connections, timeouts."""


class PermanentDeliveryError(DeliveryError):
    """Raised for 5xx replies: the relay will not take this message for this recipient."""
