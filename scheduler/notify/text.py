"""Splitting text at a channel's size limit (no imports: the delivery process starts fast)."""

from __future__ import annotations


def utf16_units(text: str) -> int:
    """Telegram measures text in UTF-16 code units: a character beyond U+FFFF counts twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_text(text: str, max_units: int) -> list[str]:
    """``text`` in parts of at most ``max_units`` UTF-16 units, cut after a line break where one
    fits, else between characters (never inside one). ``"".join(parts) == text``: nothing is
    dropped."""
    if max_units < 2:
        raise ValueError(f"max_units must be at least 2 (a character can take 2 units), got {max_units}")
    parts: list[str] = []
    rest = text
    while utf16_units(rest) > max_units:
        units = cut = 0
        for i, ch in enumerate(rest):
            units += 2 if ord(ch) > 0xFFFF else 1
            if units > max_units:
                break
            cut = i + 1
        newline = rest.rfind("\n", 0, cut)
        if newline >= 0 and newline + 1 >= cut // 2:  # a line break in the second half: cut after it
            cut = newline + 1
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts
