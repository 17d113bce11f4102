"""The request mapping's own checks, against what they stand in for."""

from __future__ import annotations

import base64
import binascii
import random
import re

from tokenomy.gateway.schemas import valid_base64
from tokenomy.messages import ImageBlock

# RFC 4648's base64: whole quanta of four characters, `=` padding only in the last one.
CANONICAL = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def strict_decodes(text: str) -> bool:
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


def test_the_fast_base64_check_accepts_exactly_rfc_4648_base64():
    rng = random.Random(7)
    samples = [base64.b64encode(rng.randbytes(n)).decode() for n in range(40)]
    samples += ["", "A", "AB", "ABC", "A===", "AB=A", "AB==AB==", "ab c", "AB\n=", "é===", "-_AA", "AA==="]
    alphabet = "ABCab019+/=-_ \n"
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 13))) for _ in range(3000)]
    assert [s for s in samples if valid_base64(s) != bool(CANONICAL.fullmatch(s))] == []
    accepted = [s for s in samples if valid_base64(s)]
    assert all(strict_decodes(s) for s in accepted)  # what passes the check decodes on the provider's side
    assert 100 < len(accepted) < len(samples) - 100  # both outcomes are exercised


def test_an_image_held_as_base64_text_is_decoded_only_when_read():
    data = bytes(range(256))
    held = ImageBlock("image/png", base64=base64.b64encode(data).decode())
    assert held.inline and held.data is None and held.payload() == data
    assert ImageBlock("image/png", data).payload() == data
    by_url = ImageBlock(url="https://example.com/a.png")
    assert not by_url.inline and by_url.payload() is None
