"""Delivery failures as staff see them: classified, with advice to read to the patron."""

from __future__ import annotations

from typing import Any

from ..contact.addresses import carrier_of
from ..masking import mask_address
from . import BounceResult, classify_smtp_reply
from ..contact.carriers import DEFAULT_SENDER, allow_sender_advice
from ..errors import DeliveryError

# Advice per reason for the patron, in the words staff would use on the phone.
_ADVICE: dict[str, str] = {
    "userunknown": "ご登録のメールアドレスが見つからないため、届きませんでした。"
                   "アドレスに誤りがないか、現在もお使いかをご確認ください。",
    "hostunknown": "ご登録のメールアドレスの「@」より後ろ(ドメイン)が見つかりません。"
                   "アドレスに誤りがないかご確認ください。",
    "mailboxfull": "受信箱が満杯のため届きませんでした。不要なメールを削除してください。",
    "suspend": "ご登録のメールアドレスが現在使えない状態(解約・休止など)のようです。"
               "お使いのアドレスをご確認ください。",
    "hasmoved": "ご登録のメールアドレスは変更されたようです。新しいアドレスを登録してください。",
}
# Each reason in plain Japanese, for staff (the web page and `review failures`).
REASON_JA: dict[str, str] = {
    "filtered": "受信拒否設定(迷惑メールフィルター)で届かない",
    "userunknown": "メールアドレスが存在しない",
    "hostunknown": "@より後ろ(ドメイン)が存在しない",
    "mailboxfull": "受信箱が満杯",
    "suspend": "アドレスが利用停止・解約されている",
    "hasmoved": "アドレスが変更された",
    "rejected": "相手側が図書館からのメールを拒否",
    "blocked": "図書館の送信元が拒否された",
    "spamdetected": "迷惑メールと判定された",
    "policyviolation": "相手側の方針により拒否",
    "expired": "配送期限切れ(届けられなかった)",
    "networkerror": "通信エラー",
    "systemerror": "相手側のシステムエラー",
    "mesgtoobig": "メールが大きすぎる",
    "notaccept": "相手側がメールを受け付けていない",
    "delayed": "配送が遅れている",
    "undefined": "理由不明",
    "authfailure": "送信ドメイン認証(SPF・DKIM・DMARC)の失敗",
    "badreputation": "図書館の送信元の評価が低い",
    "requireptr": "送信サーバーの逆引き(PTR)がない",
}
# Failures our sender caused (worker/bounces/model.py SENDER_REASONS): what staff ask the
# city's DNS (or mail) administrator for. Never read to a patron: nothing is theirs to fix.
SENDER_ADVICE: dict[str, str] = {
    "authfailure": "受信側で送信ドメイン認証(SPF・DKIM・DMARC)に失敗しました。市のDNS管理者に、"
                   "SPFレコードへの中継サーバーのアドレスの追加、DKIM公開鍵の掲載、DMARCの整合を"
                   "依頼してください(omitama-notify check domain の結果を添えてください)。",
    "blocked": "図書館の送信サーバー(IPアドレス)が受信側で拒否されました。市のメール管理者に、"
               "送信サーバーがブロックリストに載っていないかの確認と解除申請を依頼してください。",
    "badreputation": "図書館の送信元の評価(レピュテーション)が低いため拒否されました。市のメール"
                     "管理者に、送信サーバーのIPアドレスとドメインの評価の確認を依頼してください。",
    "requireptr": "送信サーバーのIPアドレスに逆引き(PTRレコード)がないため拒否されました。市のDNS"
                  "管理者(または回線事業者)に、中継サーバーのIPアドレスの逆引き設定を依頼してください。",
    "rejected": "受信側が図書館の送信元アドレス(ドメイン)を拒否しました。市のDNS管理者に、送信"
                "ドメインのSPF・DKIM・DMARCの設定確認を依頼してください"
                "(omitama-notify check domain の結果を添えてください)。",
}
_GENERIC = "メールが届きませんでした。図書館でアドレスと受信設定を確認いたします。"


def advice_for(reason: str | None, misconfigured: bool, address: str | None,
               sender: str = DEFAULT_SENDER, sender_problem: bool = False) -> str:
    if sender_problem:
        return SENDER_ADVICE.get(reason or "", SENDER_ADVICE["rejected"])
    domain = address.rpartition("@")[2].lower() if address else ""
    if misconfigured:
        return allow_sender_advice(carrier_of(domain) if domain else None, sender)
    return _ADVICE.get(reason or "", _GENERIC)


def smtp_result(error: DeliveryError, address: str) -> BounceResult | None:
    """The relay's refusal through the same classifier as bounce mails (None without a reply)."""
    if error.code is None:
        return None
    return classify_smtp_reply(error.code, error.text, command=error.command or "RCPT",
                               recipient=address.replace('"', ""))


def failure_record(card: str, hold_id: str | None, address: str, result: BounceResult, *,
                   sender: str = DEFAULT_SENDER, source: str, diagnostic: str | None = None,
                   **more: Any) -> dict[str, Any]:
    """One row of ``review failures`` (the keys of DESIGN.md, plus context)."""
    return {"card_number": card, "hold_id": hold_id, "reason": result.reason,
            "permanent": result.permanent,
            "misconfigured_recipient": result.misconfigured_recipient,
            "sender_problem": result.sender_problem,
            "status": result.status, "diagnostic": diagnostic or result.diagnostic,
            "advice": advice_for(result.reason, result.misconfigured_recipient, address, sender,
                                 result.sender_problem),
            "address": mask_address(address), "source": source, **more}


def failure_entry(card: str, hold_id: str | None, address: str, error: DeliveryError,
                  sender: str = DEFAULT_SENDER) -> dict[str, Any]:
    """A failure record from a relay's refusal (or a retry horizon that ran out)."""
    result = smtp_result(error, address)
    if result is None:
        return {"card_number": card, "hold_id": hold_id, "reason": "networkerror",
                "permanent": False, "misconfigured_recipient": False, "sender_problem": False,
                "status": None,
                "diagnostic": str(error), "command": None,
                "advice": advice_for("networkerror", False, address, sender),
                "address": mask_address(address), "source": "smtp"}
    return failure_record(card, hold_id, address, result, sender=sender, source="smtp",
                          diagnostic=f"{error.code} {error.text}", command=error.command or None)
