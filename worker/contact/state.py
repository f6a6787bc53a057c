"""Who may get e-mail: the patron contact states and the contact rule (pure).

What can happen to a state is in :mod:`worker.contact.changes`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ContactState(StrEnum):
    NONE = "none"            # no address: notices go by phone
    PENDING = "pending"      # registered, waiting for the patron's phone call
    ACTIVE = "active"        # staff approved after the call: notices go by e-mail
    SUSPENDED = "suspended"  # mail bounced for a reason the patron must fix


class Confirmation(StrEnum):
    """The fate of a registration's confirmation mail (``confirmation`` on the patron)."""

    SENDING = "sending"  # registered; the mail is being sent (a lease guards it)
    SENT = "sent"        # the relay took it
    REFUSED = "refused"  # the relay refused it (5xx); the failure is in `review failures`
    BOUNCED = "bounced"  # a verified bounce mail came back for it


class CallReason(StrEnum):
    """Why a hold is on the phone-call list instead of going by e-mail."""

    CHOSE_PHONE = "chose_phone"            # the patron chose phone for this hold
    NO_ADDRESS = "no_address"              # e-mail chosen, but no address on the card
    APPROVAL_PENDING = "approval_pending"  # address registered, staff have not approved it yet
    SUSPENDED = "suspended"                # the address bounced and is suspended
    BOUNCED = "bounced"                    # the relay refused this notice permanently (5xx)
    DELIVERY_FAILED = "delivery_failed"    # retries ran out before the pickup deadline
    PICKUP_PASSED = "pickup_passed"        # the event came after the last day to collect
    # the event came in time; the last day passed while the hold waited in its digest
    # window, or between retries of its mail (worker/holds/calls.py: passed_reason)
    PASSED_WHILE_GATHERING = "pickup_passed_while_gathering"
    PASSED_WHILE_RETRYING = "pickup_passed_while_retrying"
    WORKER_ERROR = "worker_error"          # the worker could not process it; see the log
    INVALID_EVENT = "invalid_event"        # the ILS sent a hold_ready the worker refused
    FORGOTTEN = "forgotten"                # not yet told when `patron forget` removed the card's data


# What staff read in `review calls` (Japanese, as on the counter).
CALL_REASON_JA: dict[CallReason, str] = {
    CallReason.CHOSE_PHONE: "電話連絡を希望",
    CallReason.NO_ADDRESS: "メールアドレス未登録",
    CallReason.APPROVAL_PENDING: "メールアドレス承認待ち(本人からの電話待ち)",
    CallReason.SUSPENDED: "メール停止中(不達)",
    CallReason.BOUNCED: "メールが届かなかった",
    CallReason.DELIVERY_FAILED: "メール送信に失敗(再送期限切れ)",
    CallReason.PICKUP_PASSED: "取置期限後に通知",
    CallReason.PASSED_WHILE_GATHERING: "まとめて送る待ち時間中に取置期限が過ぎた(通知は期限内に到着)",
    CallReason.PASSED_WHILE_RETRYING: "メールの再送中に取置期限が過ぎた(通知は期限内に到着)",
    CallReason.WORKER_ERROR: "システムエラー",
    CallReason.INVALID_EVENT: "予約連携データに不備(内容を確認して電話)",
    CallReason.FORGOTTEN: "利用者の記録は削除済み(予約番号で利用者を確認して電話)",
}


@dataclass(frozen=True)
class Contact:
    """A patron's e-mail contact as stored.

    ``address``/``envelope`` are the *approved* address (display form and the
    form for SMTP, quoted where a legacy carrier address needs it). A patron can
    be ``pending`` and still have an approved address: a new registration does
    not take the old, approved one away until staff approve the new one.
    """

    card_number: str
    state: ContactState = ContactState.NONE
    address: str | None = None
    envelope: str | None = None
    pending_address: str | None = None


@dataclass(frozen=True)
class Decision:
    by_email: bool
    reason: CallReason | None = None   # set when not by e-mail
    envelope: str | None = None        # where to send, when by e-mail


def decide_contact(chosen: str, contact: Contact) -> Decision:
    """E-mail only when the patron chose e-mail for this hold AND has an approved address
    that is not suspended; otherwise the phone-call list, with the reason."""
    if chosen != "email":
        return Decision(False, CallReason.CHOSE_PHONE)
    if contact.state is ContactState.SUSPENDED:
        return Decision(False, CallReason.SUSPENDED)
    if contact.envelope and contact.state in (ContactState.ACTIVE, ContactState.PENDING):
        return Decision(True, envelope=contact.envelope)
    if contact.state is ContactState.PENDING:
        return Decision(False, CallReason.APPROVAL_PENDING)
    return Decision(False, CallReason.NO_ADDRESS)
