"""What staff read to a patron so that the library's mail gets through their filter.

Most failed deliveries to Japanese carrier addresses are the patron's own filter
(受信リスト / 迷惑メールフィルター) refusing an unknown sender, and since 2025 docomo hides
filtered mail instead of bouncing it. The fix is on the patron's phone, so the staff
member on the call needs one short, polite sentence per carrier naming the screen to open
and what to register: the sender address and, as an alternative, its domain.

Menu names follow the carriers' own wording as far as we could check it (docomo's
受信リスト設定, au's 迷惑メールフィルター → 受信リスト, SoftBank's My SoftBank → メール設定 →
迷惑メール対策 → 受信許可リスト). Carriers rename screens from time to time, so the texts
name the setting rather than every tap, and tell the patron where to ask if it differs.

The sender is always passed in (it comes from ``[mail] from_address`` in the settings);
:data:`DEFAULT_SENDER` is only the documented default.
"""

from __future__ import annotations

__all__ = [
    "CARRIERS",
    "DEFAULT_SENDER",
    "allow_sender_advice",
    "carrier_label",
    "sender_domain",
]

#: The library's send-only address, as printed in the patron guide. Default only.
DEFAULT_SENDER = "lib@city.omitama.ibaraki.jp"

#: Carrier identifiers, as returned by :func:`worker.contact.addresses.carrier_of`.
CARRIERS: tuple[str, ...] = ("docomo", "au", "softbank", "rakuten", "ymobile")

_LABELS: dict[str, str] = {
    "docomo": "ドコモ",
    "au": "au",
    "softbank": "ソフトバンク",
    "rakuten": "楽天モバイル",
    "ymobile": "ワイモバイル",
}

#: Label for every address that is not a carrier mailbox (Gmail, iCloud, ISP mail…).
GENERIC_LABEL = "携帯会社以外のメール（Gmail・iCloudメールなど）"

# One template per carrier. {sender} and {domain} are filled in; keep each one short
# enough to read aloud, in です・ます, and naming both the address and the domain.
_ADVICE: dict[str | None, str] = {
    "docomo": (
        "ドコモメールをお使いの場合は、My docomo（またはドコモメールアプリ）の"
        "「メール設定」から「受信リスト設定」を開き、{sender} を受信リストに登録してください。"
        "ドメインで登録する場合は {domain} です。"
        "迷惑メールフォルダに届いていることもありますので、あわせてご確認ください。"
    ),
    "au": (
        "auメールをお使いの場合は、auメールアプリの「メール設定」から"
        "「迷惑メールフィルター」を開き、「受信リスト設定（受信リストに登録）」に "
        "{sender} を登録してください。ドメインで登録する場合は {domain} です。"
    ),
    "softbank": (
        "ソフトバンクのメールをお使いの場合は、My SoftBank の「メール設定」→"
        "「迷惑メール対策」→「受信許可リスト」に {sender} を登録してください。"
        "ドメインで登録する場合は {domain} です。"
    ),
    "rakuten": (
        "楽天モバイルの楽メールをお使いの場合は、楽メールの迷惑メール設定で、"
        "{sender} を受信を許可するアドレスに登録してください。"
        "ドメインで登録する場合は {domain} です。"
        "画面が分からない場合は楽天モバイルの窓口でお尋ねください。"
    ),
    "ymobile": (
        "ワイモバイルのメールをお使いの場合は、My Y!mobile の「メール設定」にある"
        "迷惑メール対策の「受信許可リスト」に {sender} を登録してください。"
        "ドメインで登録する場合は {domain} です。"
    ),
    None: (
        "図書館からのメールは {sender} から送信します。"
        "迷惑メールフォルダに入っていないかご確認いただき、入っていた場合は"
        "「迷惑メールではない」に設定してください。"
        "{sender} を連絡先に登録するか、受信を許可するドメインに {domain} を"
        "登録していただくと確実です。"
    ),
}


def sender_domain(sender: str) -> str:
    """Return the domain part of ``sender`` (what a patron registers for domain filters)."""
    _, at, domain = sender.strip().rpartition("@")
    return domain if at and domain else sender.strip()


def carrier_label(carrier: str | None) -> str:
    """Return the Japanese name staff say on the phone (ドコモ / au / ソフトバンク …).

    Unknown identifiers and None fall back to the generic label rather than failing,
    because staff views must render whatever an old record holds.
    """
    if carrier is None:
        return GENERIC_LABEL
    return _LABELS.get(carrier, GENERIC_LABEL)


def allow_sender_advice(carrier: str | None, sender: str) -> str:
    """Return the sentence staff read to the patron to let mail from ``sender`` through.

    ``carrier`` is :func:`worker.contact.addresses.carrier_of` of the patron's domain; unknown
    carriers and None get the generic advice (spam folder, contacts, domain allow-list),
    which is also right for Gmail, iCloud and ISP mail.
    """
    if not isinstance(sender, str) or "@" not in sender:
        raise ValueError(f"sender must be an e-mail address, got {sender!r}")
    template = _ADVICE.get(carrier, _ADVICE[None])
    return template.format(sender=sender.strip(), domain=sender_domain(sender))
