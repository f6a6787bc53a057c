"""Japanese text in short lines for a phone screen (pure).

Width is counted in columns as a Japanese phone draws them: East Asian wide,
full-width *and ambiguous* characters (漢字, かな, ■, ※, ―, →) take two, everything
else one. The mails keep every line within :data:`MAIL_COLUMNS` = 40 columns, that is
20 full-width characters: what an old feature phone shows on one line, and short enough
that a smartphone never wraps a line in the middle of a word.

Lines break where a person writing a notice would break them: a sentence ends a line
(after 。); otherwise after 、 or a closing bracket, before an opening one or at a space,
then where hiragana meets a word (「設定から|受信リスト」), and only when nothing else
fits inside a word. Never before 、。」ー or a small kana, never after 「（ (kinsoku).
"""

from __future__ import annotations

import re
import unicodedata

MAIL_COLUMNS = 40

# kinsoku shori: what may not start a line, and what may not end one
_NO_START = set("、。，．,.)）」』】〕〉》]｝}！？!?・：:；;ー～ーぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々ゝゞヽヾ…‥")
_NO_END = set("（(「『【〔〈《［[｛{")
_SENTENCE = re.compile(r"(?<=[。！？])(?=[^\s%s])" % re.escape("".join(sorted(_NO_START))))


def columns(text: str) -> int:
    """Columns ``text`` takes on a Japanese phone (wide, full-width, ambiguous: 2)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WFA" else 1 for c in text)


def _kind(c: str) -> str:
    if c.isspace():
        return "space"
    if "\u3041" <= c <= "\u309f":
        return "hira"
    if "\u30a0" <= c <= "\u30ff" or c == "ー":
        return "kata"
    if ord(c) < 0x80 or unicodedata.east_asian_width(c) in "NaH":
        return "ascii"  # letters, digits, an address: a word not to split
    if unicodedata.category(c).startswith("L"):
        return "kanji"
    return "punct"


def _rank(text: str, i: int) -> int:
    """How good a line break before ``text[i]`` is: -1 never, 0 only if nothing else fits."""
    before, after = text[i - 1], text[i]
    if after in _NO_START or before in _NO_END:
        return -1
    a, b = _kind(before), _kind(after)
    if b == "space":
        return 0  # break after the space instead: it stays at the end of the line
    if a == "space":
        prev = _kind(text[i - 2]) if i >= 2 else "space"
        if b == "hira":
            return 0  # a particle after a word (「… を登録」) stays with the word
        return 1 if prev == b == "ascii" else 3  # "My docomo" is one name
    if b == "hira" and a in ("kata", "kanji", "ascii", "punct") and before not in "、。，,":
        return 0  # 「受信リスト」を: the particle stays with what it follows
    if before in "、，,」』）)】〕" or after in "「『（(【〔":
        return 3
    if a == "hira" and b != "hira":
        # ご確認, お受け取り: an honorific prefix stays with its word
        return 0 if before in "ごお" and b == "kanji" else 2
    if a != b:
        return 1
    return 0 if a in ("kata", "kanji", "ascii") else 1


def _wrap_sentence(text: str, width: int) -> list[str]:
    lines: list[str] = []
    while text:
        text = text.lstrip()
        if columns(text.rstrip()) <= width:
            if text.rstrip():
                lines.append(text.rstrip())
            break
        fits, used = 0, 0
        for j, c in enumerate(text):  # longest head that fits (trailing space is free)
            used += columns(c)
            if used > width and not c.isspace():
                break
            fits = j + 1
        fits = max(fits, 1)
        best, best_rank = 0, -1
        for b in range(1, fits + 1):
            r = _rank(text, b) if b < len(text) else 3
            # a short line is worse than a mid-word break only when it is very short
            if r >= 0 and columns(text[:b]) * 2 >= width and r >= best_rank:
                best, best_rank = b, r
        if not best:
            best = next((b for b in range(fits, 0, -1) if _rank(text, b) >= 0), fits)
        lines.append(text[:best].rstrip())
        text = text[best:]
    return lines


def wrap(text: str, width: int = MAIL_COLUMNS) -> list[str]:
    """``text`` as lines of at most ``width`` columns (a word longer than that is cut).
    Line ends already in ``text`` are kept; a sentence ends its line."""
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        if not para.strip():
            lines.append("")
            continue
        for sentence in _SENTENCE.split(para):
            lines.extend(_wrap_sentence(sentence, width))
    return lines


def wrap_text(text: str, width: int = MAIL_COLUMNS) -> str:
    """:func:`wrap` joined with newlines (the mail templates' ``wrap`` filter)."""
    return "\n".join(wrap(text, width))
