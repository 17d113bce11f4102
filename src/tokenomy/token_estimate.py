"""The one rule that turns characters into estimated tokens, for every estimate made without a tokenizer (rate
limits, cache placement, an answer sent without usage, the ledger's prefix size), and the upper bound of a text's
tokens that a budget reserves a prompt at (`bound_length`: an estimate is an average, which dense text beats).

English text and JSON run about 4 characters a token. Other scripts do not: a Chinese, Japanese or Korean character
is about one token on every hosted tokenizer, and Cyrillic, Greek or accented Latin letters about half of one, so
counting them at 4 characters a token reserved a quarter of what a CJK prompt costs. `weighted_length` gives a text's
length in ASCII characters' worth: an ASCII character counts 1, a character of 2 UTF-8 bytes 2, one of 3 bytes (CJK,
kana, Hangul, most other Asian scripts) 4, one of 4 bytes (emoji, rare CJK) 6; a quarter of that is the estimate.

ASCII text, which nearly every request is, costs one check: CPython knows a string is ASCII without reading it. The
bound reads the text in a few C passes (`bytes.translate`, `bytes.count` and integer bit operations), made only for a
budgeted call.
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


# The upper bound a budget reserves a prompt at (`bound_length`), by byte class. Letters and the space are the words
# the estimate measures; every other byte (a digit, punctuation, a newline) is at most one token on a byte-level
# tokenizer, where each token holds at least one byte.
#
# Each byte's class is a code whose bits find the pairs of classes that start a token of their own (letters after a
# digit, as in hex, UUIDs and base64; a lower-to-upper case change, as in camelCase; a digit after a space, as a
# number takes no leading space) all at once: read as one integer (byte i at bits 8i..8i+7), `codes & codes >> 4`
# has a bit for each such pair. The high nibble of a byte says which pairs its class starts, the low nibble which
# pairs it ends; shifting by 4 lines byte i's high nibble up with byte i + 1's low nibble, and meets a byte's own
# low nibble with its high one (no class both starts and ends one kind of pair, so that is never a bit).
#   bit 4 (starts) / 0 (ends): lowercase letter or digit, then uppercase letter
#   bit 5 (starts) / 1 (ends): digit, then lowercase letter
#   bit 6 (starts) / 2 (ends): space, then digit
# Bit 3 tells other ASCII bytes from non-ASCII ones (0); bit 7 stays clear, or bit 3 after it would pair.
_LOWER, _UPPER, _DIGIT, _SPACE, _OTHER_ASCII, _NON_ASCII = 0x12, 0x01, 0x34, 0x40, 0x08, 0x00


def _byte_classes() -> bytes:
    """A `bytes.translate` table of each byte's class code (above)."""
    table = bytearray([_OTHER_ASCII] * 128 + [_NON_ASCII] * 128)
    for first, last, code in ((b"a", b"z", _LOWER), (b"A", b"Z", _UPPER), (b"0", b"9", _DIGIT), (b" ", b" ", _SPACE)):
        table[first[0] : last[0] + 1] = bytes([code]) * (last[0] - first[0] + 1)
    return bytes(table)


_CLASSES = _byte_classes()


def bound_length(text: str) -> int:
    """An upper bound of `text`'s tokens, in the estimate's units (4 of them ~ 1 token), for a budget's reservation:
    the estimate (`weighted_length`) is an average that dense text beats (4,000 digits are 1,000 tokens estimated and
    4,000 on a tokenizer that splits digits, as Gemini's and SmolLM2's do), and N concurrent calls admitted on it
    overspend their budget by N times the gap.

    By class, each at no less than the densest tokenizer measured spends on it (cl100k_base, o200k_base and
    SmolLM2's, on prose, code, JSON, logs, CSV numbers, hex, UUIDs, base64, emoji, CJK and Cyrillic text):
    - lowercase letters and spaces at the estimate, 4 a token: words, on which English prose spends 0.86-1.01 of
      the estimate; uppercase letters at 2 a token (acronyms, constants, SQL keywords and base64 split finer);
    - every other ASCII byte (digit, punctuation, newline) at a token: a token holds at least one byte, so no
      byte-level tokenizer spends more on it;
    - one more token where one starts of its own: letters after a digit (hex, UUIDs, base64), a lower-to-upper case
      change, a digit after a space, and letters that open the text;
    - a non-ASCII character of n UTF-8 bytes at n - 1 tokens (twice the estimate's weight): a CJK character at 2
      (SmolLM2 spent 1.67, cl100k_base 1.02), a Cyrillic letter at 1 (0.77), an emoji at 3 (2.7 with its modifier).
    English prose comes to 1.17-1.31 times the estimate, code 1.35-1.5, JSON and logs 1.04-1.3 times the densest
    count. Not bounded, as only the byte count bounds them: random letters (any run of letters may be a token each),
    and base64 on SmolLM2's small vocabulary (0.97 of its count; 1.1 of cl100k_base's); text of one- and
    two-letter words (0.83), each a token where the estimate has a half or three quarters of one."""
    data = text.encode("utf-8", "surrogatepass")
    extra = len(data) - len(text)  # UTF-8 bytes past the first of each non-ASCII character
    # Text of more UTF-8 bytes past the first than characters (mostly CJK or emoji) has its few ASCII bytes classed
    # apart: the encoder skips runs of other characters faster than a count reads their every byte.
    every_byte = extra < len(text)
    counted = (data if every_byte else text.encode("ascii", "ignore")).translate(_CLASSES)
    capitals = counted.count(_UPPER)
    digits = counted.count(_DIGIT)
    dense = digits + counted.count(_OTHER_ASCII)  # ASCII bytes that are not letters or spaces
    words = len(counted) - dense - (counted.count(_NON_ASCII) if extra else 0)
    own = int(data[:1].isalpha())  # letters that open the text take no space before them (isalpha: ASCII only)
    if capitals or digits:  # else no pair is in the text
        codes = int.from_bytes(counted if every_byte else data.translate(_CLASSES), "little")
        own += (codes & codes >> 4).bit_count()
    return words + capitals + 4 * (dense + own + extra)


def bound_text_tokens(text: str) -> int:
    """An upper bound of `text`'s tokens (`bound_length`, rounded up)."""
    return (bound_length(text) + 3) // 4
