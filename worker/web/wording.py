"""What staff read, in Japanese: states, refusal reasons and audit entries, looked up by
stable kinds (a ReviewError's ``kind``, an audit entry's fixed ``what`` and its fields,
a failure's reason code) — never by parsing English text."""

from __future__ import annotations

from typing import Any

from ..app.refusals import RefusalKind
from ..contact import Confirmation, ContactState
from ..contact.changes import AuditKind
from ..errors import ReviewError
from ..bounces.failures import REASON_JA

STATE_JA: dict[str, str] = {
    ContactState.NONE: "未登録(電話連絡)", ContactState.PENDING: "承認待ち(本人からの電話待ち)",
    ContactState.ACTIVE: "メール利用中", ContactState.SUSPENDED: "メール停止中(不達)"}
CONFIRMATION_JA: dict[str | None, str] = {
    Confirmation.SENT: "送信済み", Confirmation.REFUSED: "送信できず(受信拒否など)",
    Confirmation.SENDING: "送信中", Confirmation.BOUNCED: "届かず(バウンスメールあり)",
    None: "-", "": "-"}
# what a `review rejected` row is, when re-validating its raw payload cannot say why
# (see worker/web/refusal_ja.py): the event itself was valid, or the message around it not
REFUSAL_KIND_JA: dict[str, str] = {
    RefusalKind.MALFORMED_ENVELOPE: "メッセージの形式(envelope)が正しくありません",
    RefusalKind.WRONG_ACTOR: "データの種類(type)と送り先(actor_name)が一致しません",
    RefusalKind.INVALID_EVENT: "データの内容が正しくありません",
    RefusalKind.REFUSED_ADDRESS: "メールアドレスとして使えないため受け付けられません",
    RefusalKind.CONFLICTING_EVENT: "同じ予約の先のデータとカード番号または受取館が違います"
                                   "(先のデータで連絡しています)",
}
CODE_JA = {"valid": "有効", "expired": "期限切れ", "locked": "ロック(誤入力が上限)"}
STAFF_JA = {"worker": "自動処理", "website": "ウェブサイト(利用者本人)"}

_NO_CODE = "理由を書いて「番号なしで承認」するか、再登録をご案内ください。"
ERROR_JA = {
    "wrong_code": "カード {card}: 受付番号が違います。あと {left} 回入力できます。",
    "wrong_code_locked": "カード {card}: 受付番号が違います。誤入力が上限に達したため、"
                         "番号はロックされました。" + _NO_CODE,
    "code_locked": "カード {card}: 受付番号は {tries} 回の誤入力でロックされています。" + _NO_CODE,
    "code_expired": "カード {card}: 受付番号の有効期限が切れています。" + _NO_CODE,
    "not_pending": "カード {card} は承認待ちではありません(現在: {state})。何も変更していません。",
    "approve_needs_reason": "番号なしで承認するには理由が必要です。",
    "approve_needs_registration": "カード {card}: どの登録を承認するか分かりません。"
                                  "ページを読み込み直してください。",
    "registration_changed": "カード {card}: この画面を表示した後に、利用者が別のメールアドレスを"
                            "登録しました。何も変更していません。ページを読み込み直して、"
                            "新しいアドレスを利用者に確認してください。",
    "not_on_call_list": "予約 {hold_id} は電話連絡リストにありません(連絡済み・取消・受取済みなど)。",
    "not_called": "予約 {hold_id} は連絡済みではないため、取り消せません"
                  "(すでにリストに戻っている、または取消・受取済み)。",
    "reenable_needs_reason": "再開するには理由(利用者が何を変更したか)が必要です。",
    "not_suspended": "カード {card} はメール停止中ではありません(現在: {state})。何も変更していません。",
    "remove_needs_reason": "アドレスを削除するには理由が必要です。",
    "no_address": "カード {card} にはメールアドレスが登録されていません。何も変更していません。",
    # the same action again (AlreadyDone): shown as done, not as an error
    "already_approved": "カード {card} のこの登録は既に承認済みです。何も変更していません。",
    "already_rejected": "カード {card} のこの登録は既に却下済みです。何も変更していません。",
    "already_removed": "カード {card} のメールアドレスは既に削除されています。何も変更していません。",
    "already_active": "カード {card} のメール連絡は既に使える状態です(再開・承認済み)。"
                      "何も変更していません。",
    "already_called": "予約 {hold_id} は既に連絡済みです。何も変更していません。",
    "already_uncalled": "予約 {hold_id} は既に電話連絡リストに戻っています。何も変更していません。",
    "already_sender_fixed": "送信元の問題は既に「解決済み」です。何も変更していません。",
}

# a staff action written but not confirmed by a replica (NotConfirmed, [staff_writes])
NOT_CONFIRMED_JA = ("操作は記録しましたが、予備のサーバーにも写ったことを確認できませんでした"
                    "(このあとサーバーの障害が重なると、この操作が消えることがあります)。"
                    "数分たってからこのページを読み込み直し、操作が反映されていなければ、"
                    "もう一度同じ操作をしてください。同じ操作を繰り返しても、"
                    "二重に記録されることはありません。")

# audit entries by their stable kind
KIND_JA: dict[str, str] = {
    AuditKind.REGISTERED: "アドレス登録(本人からの電話待ち)",
    AuditKind.ADDRESS_REFUSED: "アドレスを受付できず(状態は変更なし)",
    AuditKind.APPROVED: "承認(受付番号を確認)",
    AuditKind.APPROVED_WITHOUT_CODE: "承認(受付番号なし)",
    AuditKind.REJECTED: "登録を却下",
    AuditKind.REMOVED: "アドレス削除",
    AuditKind.SUSPENDED: "メール停止(不達)",
    AuditKind.SUSPENDED_WHILE_PENDING: "承認済みアドレスをメール停止(新しいアドレスは承認待ち)",
    AuditKind.FAILURE_NOT_SUSPENDED: "メール不達(アドレスは停止せず)",
    AuditKind.FAILURE_NOTED: "メール不達",
    AuditKind.REENABLED: "メール再開",
    AuditKind.CALLED: "電話連絡済み(予約 {hold_id})",
    AuditKind.UNCALLED: "電話連絡済みを取り消し(予約 {hold_id})",
    AuditKind.FORGOTTEN: "利用者の求めにより、この利用者の記録をすべて削除",
}
# entries written before they carried a kind: by their fixed English ``what``
AUDIT_JA = {
    "address registered, awaiting the patron's call": "アドレス登録(本人からの電話待ち)",
    "address refused; state unchanged": "アドレスを受付できず(状態は変更なし)",
    "approved after the patron's call (code checked)": "承認(受付番号を確認)",
    "approved after the patron's call WITHOUT the code": "承認(受付番号なし)",
    "registration rejected": "登録を却下",
    "address removed": "アドレス削除",
    "address suspended": "メール停止(不達)",
    "approved address suspended (new one still pending)":
        "承認済みアドレスをメール停止(新しいアドレスは承認待ち)",
    "delivery failure; address not suspended": "メール不達(アドレスは停止せず)",
    "delivery failure": "メール不達",
    "address re-enabled": "メール再開",
}
CALLED, UNCALLED = "phoned about hold ", "call undone for hold "


def state_ja(state: str | None) -> str:
    return STATE_JA.get(state or ContactState.NONE, state or "")


def error_ja(e: ReviewError) -> str:
    """A refused staff action in Japanese; the English message only for a kind not in
    the table (a bug to add to it, not a reason to hide the refusal)."""
    text = ERROR_JA.get(e.kind)
    if text is None:
        return str(e)
    params = {k: state_ja(str(v)) if k == "state" else v for k, v in e.params.items()}
    return text.format(**params)


def audit_ja(entry: dict[str, Any]) -> str:
    what = str(entry.get("what") or "")
    kind = KIND_JA.get(str(entry.get("kind") or ""))
    if kind:
        return kind.format(hold_id=entry.get("hold_id") or "")
    if what in AUDIT_JA:
        return AUDIT_JA[what]
    if what.startswith(CALLED):
        return f"電話連絡済み(予約 {entry.get('hold_id') or what[len(CALLED):]})"
    if what.startswith(UNCALLED):
        return f"電話連絡済みを取り消し(予約 {entry.get('hold_id') or what[len(UNCALLED):]})"
    if entry.get("state") and what.startswith("state → "):
        return f"状態を変更: {state_ja(entry['state'])}"
    return what


def audit_why_ja(entry: dict[str, Any]) -> str:
    """The reason column: staff's own words as typed; for the worker's entries the
    failure's reason code in Japanese (the English detail stays in the tooltip)."""
    why = str(entry.get("why") or "")
    code = entry.get("failed_reason")
    if code is None and entry.get("staff") == "worker":
        head = why.split(":", 1)[0]
        code = head if head in REASON_JA else None
    if code:
        return REASON_JA.get(str(code), "その他の理由")
    if entry.get("staff") == "website" and why.startswith("removed on the website"):
        return "ウェブサイトで利用者が削除"
    return why


def staff_ja(staff: str | None) -> str:
    return STAFF_JA.get(staff or "", staff or "-")
