"""The one rule that turns characters into estimated tokens, for every estimate made without a tokenizer (rate
limits, cache placement, an answer sent without usage, the ledger's prefix size), and the upper bound of a text's
tokens that a budget reserves a prompt at (`bound_length`: an estimate is an average, which dense text beats).

English text and JSON run about 4 characters a token. Other scripts do not: a Chinese, Japanese or Korean character
is about one token on every hosted tokenizer, and Cyrillic, Greek or accented Latin letters about half of one, so
counting them at 4 characters a token reserved a quarter of what a CJK prompt costs. `weighted_length` gives a text's
length in ASCII characters' worth: an ASCII character counts 1, a character of 2 UTF-8 bytes 2, one of 3 bytes (CJK,
kana, Hangul, most other Asian scripts) 4, one of 4 bytes (emoji, rare CJK) 6; a quarter of that is the estimate.

ASCII text, which nearly every request is, costs one check: CPython knows a string is ASCII without reading it. The
bound reads the text in a few C passes (`bytes.translate` and `bytes.count`), made only for a budgeted call.
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
_WORD_BYTES = b" ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NON_ASCII = bytes(range(128, 256))


def _byte_classes() -> bytes:
    """A `bytes.translate` table of each byte's class: l (lowercase letter), U (uppercase), D (digit), S (space), N
    (anything else, non-ASCII bytes too)."""
    table = bytearray(b"N" * 256)
    for first, last, name in ((b"a", b"z", b"l"), (b"A", b"Z", b"U"), (b"0", b"9", b"D"), (b" ", b" ", b"S")):
        table[first[0] : last[0] + 1] = name * (last[0] - first[0] + 1)
    return bytes(table)


_CLASSES = _byte_classes()
# Pairs of classes that start a token of their own: letters after a digit (hex, UUIDs, base64), a lower-to-upper
# case change (camelCase, base64's mixed case), a digit after a space (a number takes no leading space). Counted only
# where the text has digits or capitals; letters after a digit are counted in the reversed text, where the search
# for "lD" skips ahead on the rare D (`bytes.count` of a pair ending in a letter, in prose, checks nearly every byte).
_AFTER_DIGIT = (b"lD", b"UD")


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
    - one more token where one starts of its own: letters after a digit (`_AFTER_DIGIT`), a lower-to-upper case
      change, a digit after a space, and letters that open the text;
    - a non-ASCII character of n UTF-8 bytes at n - 1 tokens (twice the estimate's weight): a CJK character at 2
      (SmolLM2 spent 1.67, cl100k_base 1.02), a Cyrillic letter at 1 (0.77), an emoji at 3 (2.7 with its modifier).
    English prose comes to 1.17-1.31 times the estimate, code 1.35-1.5, JSON and logs 1.04-1.3 times the densest
    count. Not bounded, as only the byte count bounds them: random letters (any run of letters may be a token each),
    and base64 on SmolLM2's small vocabulary (0.97 of its count; 1.1 of cl100k_base's); text of one- and
    two-letter words (0.83), each a token where the estimate has a half or three quarters of one."""
    data = text.encode("utf-8", "surrogatepass")
    extra = len(data) - len(text)  # UTF-8 bytes past the first of each non-ASCII character
    if extra:
        dense = len(data.translate(None, _WORD_BYTES + _NON_ASCII))
        words = len(data.translate(None, _NON_ASCII)) - dense
    else:
        dense = len(data.translate(None, _WORD_BYTES))
        words = len(data) - dense
    classes = data.translate(_CLASSES)
    capitals = classes.count(b"U")
    own = int(classes[:1] in (b"l", b"U"))  # letters that open the text take no space before them
    if capitals:
        own += classes.count(b"lU")
    if dense and classes.count(b"D"):
        backwards = classes[::-1]
        own += sum(backwards.count(pair) for pair in _AFTER_DIGIT) + classes.count(b"SD")
    return words + capitals + 4 * (dense + own + extra)


def bound_text_tokens(text: str) -> int:
    """An upper bound of `text`'s tokens (`bound_length`, rounded up)."""
    return (bound_length(text) + 3) // 4
