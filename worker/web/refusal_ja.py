"""Why an ILS event was refused, in Japanese, for the 受付できなかったデータ page.

The stored refusal keeps the English text written for the integrator (``review
rejected``); staff read this instead. It is derived from stable kinds: the event is
validated again with the same models, and each pydantic error's ``type`` and ``loc``
are looked up in the tables below — no parsing of English text.
"""

from __future__ import annotations

import json
from typing import Any, Collection

from pydantic import ValidationError

from ..events import EVENT_TYPES, MAX_EVENT_BYTES

FIELD_JA = {
    "event_id": "イベントID", "type": "種類", "hold_id": "予約番号", "card_number": "カード番号",
    "item": "資料", "item.title": "題名", "item.author": "著者", "item.call_number": "請求記号",
    "item.material": "資料種別", "pickup_branch": "受取館", "ready_at": "用意できた日時",
    "pickup_by": "取置期限", "contact": "連絡方法", "patron_name": "利用者名",
    "email": "メールアドレス", "registered_at": "登録日時", "application_branch": "申込館",
    "removed_at": "削除日時",
}
TYPE_JA = {
    "missing": "がありません(必須)",
    "extra_forbidden": "はこの種類のデータにない項目です",
    "string_type": "が文字列ではありません",
    "model_type": "の形式が正しくありません",
    "model_attributes_type": "の形式が正しくありません",
    "timezone_aware": "に時差(+09:00 など)がありません",
    "string_too_long": "が長すぎます",
    "string_too_short": "が空です",
    "string_pattern_mismatch": "に使えない文字が含まれています",
    "literal_error": "の値が決められたもののどれでもありません",
    "date_type": "の日付の形式が正しくありません(例: 2026-12-01)",
    "date_parsing": "の日付の形式が正しくありません(例: 2026-12-01)",
    "date_from_datetime_parsing": "の日付の形式が正しくありません(例: 2026-12-01)",
    "datetime_type": "の日時の形式が正しくありません",
    "datetime_parsing": "の日時の形式が正しくありません",
    "datetime_from_date_parsing": "の日時の形式が正しくありません",
}
VALUE_JA = {"pickup_branch": "に登録されていない館が指定されています",
            "application_branch": "に登録されていない館が指定されています"}


def _problem(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    field = FIELD_JA.get(loc, loc or "データ")
    if err["type"] == "value_error":
        return field + VALUE_JA.get(loc, "の値が正しくありません")
    return field + TYPE_JA.get(err["type"], "の値が正しくありません")


def refusal_ja(raw: str | None, branches: Collection[str]) -> list[str]:
    """The refusal's reasons in Japanese (empty: none found again; show the stored text)."""
    if not isinstance(raw, str):
        return []
    if len(raw.encode()) > MAX_EVENT_BYTES:
        return ["データが大きすぎます"]
    try:
        data = json.loads(raw)
    except ValueError:
        return ["JSON として読み取れないデータです"]
    if not isinstance(data, dict):
        return ["データが JSON のオブジェクトではありません"]
    etype = data.get("type")
    model = EVENT_TYPES.get(etype) if isinstance(etype, str) else None
    if model is None:
        return ["データの種類(type)が不明です"]
    try:
        model.model_validate_json(json.dumps(data, ensure_ascii=False), strict=True,
                                  context={"branches": branches})
    except ValidationError as e:
        return [_problem(dict(err)) for err in e.errors(include_url=False)]
    return []
