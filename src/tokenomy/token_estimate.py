"""The one rule that turns characters into estimated tokens, for every estimate made without a tokenizer (a budget's
reservation, rate limits, cache placement, an answer sent without usage, the ledger's prefix size).

English text and JSON run about 4 characters a token. Other scripts do not: a Chinese, Japanese or Korean character
is about one token on every hosted tokenizer, and Cyrillic, Greek or accented Latin letters about half of one, so
counting them at 4 characters a token reserved a quarter of what a CJK prompt costs. `weighted_length` gives a text's
length in ASCII characters' worth: an ASCII character counts 1, a character of 2 UTF-8 bytes 2, one of 3 bytes (CJK,
kana, Hangul, most other Asian scripts) 4, one of 4 bytes (emoji, rare CJK) 6; a quarter of that is the estimate.

ASCII text, which nearly every request is, costs one check: CPython knows a string is ASCII without reading it.
"""

from __future__ import annotations


def weighted_length(text: str) -> int:
    """`text`'s length in ASCII characters' worth (4 of them ~ 1 token); `len(text)` for ASCII text."""
    if text.isascii():
        return len(text)
    ascii_chars = len(text.encode("ascii", "ignore"))
    # UTF-8 bytes past the first of each character: 1 for a 2-byte character, 2 for a 3-byte one, 3 for a 4-byte one.
    extra = len(text.encode("utf-8", "surrogatepass")) - len(text)
    return ascii_chars + 2 * extra


def estimate_text_tokens(text: str) -> int:
    """Estimated tokens of `text` (rounded up)."""
    return (weighted_length(text) + 3) // 4
