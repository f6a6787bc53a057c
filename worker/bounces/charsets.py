"""Text out of whatever bytes a bounce carries: mislabelled Japanese charsets, raw
8-bit headers. Never raises: the worst case is U+FFFD replacement characters."""

from __future__ import annotations

import codecs
import email.header

#: Charsets tried, in order, after the declared one.  EUC-JP goes before CP932
#: because EUC-JP bytes usually also "decode" (wrongly) as CP932, not the reverse.
FALLBACK_CHARSETS: tuple[str, ...] = ("utf-8", "iso-2022-jp", "euc-jp", "cp932")

_CHARSET_ALIASES = {
    "iso-2022-jp": "iso2022_jp_ext", "shift_jis": "cp932", "shift-jis": "cp932",
    "sjis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932", "euc-jp": "euc_jis_2004",
    "x-euc-jp": "euc_jis_2004", "us-ascii": "ascii", "unknown-8bit": "utf-8",
    "ks_c_5601-1987": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode bytes with the declared charset if it fits, else the first that does."""
    if not data:
        return ""
    tried: list[str] = []
    for name in (declared, *FALLBACK_CHARSETS):
        codec = _codec(name)
        if codec is None or codec in tried:
            continue
        tried.append(codec)
        if codec.startswith("iso2022") and any(b > 0x7F for b in data[:4096]):
            continue  # 8-bit bytes cannot be ISO-2022-JP: the label lies
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("utf-8", errors="replace")


def surrogate_bytes(text: str) -> bytes:
    """Recover the raw bytes of a header that compat32 read with surrogateescape."""
    try:
        return text.encode("ascii", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")


def decode_header_value(value: object) -> str:
    """Decode a header value (encoded-words, raw 8-bit) into one unfolded line."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):  # compat32 hands back raw 8-bit as a Header
        pieces = []
        for chunk, charset in getattr(value, "_chunks", []):
            if str(charset) == "unknown-8bit":
                pieces.append(decode_bytes(surrogate_bytes(chunk)))
            else:
                pieces.append(str(chunk))
        return " ".join("".join(pieces).split())
    text = str(value)
    try:
        chunks = email.header.decode_header(text)
        out: list[str] = []
        for chunk, charset in chunks:
            if isinstance(chunk, bytes):
                raw = chunk if charset else surrogate_bytes(chunk.decode("ascii", "surrogateescape"))
                out.append(decode_bytes(raw, charset))
            else:
                out.append(decode_bytes(surrogate_bytes(chunk)))
        text = "".join(out)
    except Exception:  # noqa: BLE001 - a header must never stop classification
        text = decode_bytes(surrogate_bytes(text))
    return " ".join(text.split())
