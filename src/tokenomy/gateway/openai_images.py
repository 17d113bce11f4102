"""The images of OpenAI's chat-completions request: an `image_url` content part as an ImageBlock, its data URL split
and its base64 payload checked (not decoded: only an API that takes bytes decodes it). An agent sends its
conversation's images again with every turn, so payloads found valid lately are kept and found again cheaply.
"""

from __future__ import annotations

from typing import Any

from tokenomy.gateway.openai_shapes import IMAGE_KEYS, RequestError, bad_shape, fits
from tokenomy.messages import ImageBlock


def data_url(url: str, where: str, suffix: str = "") -> tuple[str, str]:
    """(media type, base64 text) of a `data:<type>;base64,<data>` URL whose payload is checked, not decoded.
    `where` + `suffix` names it in an error (joined only then)."""
    found = split_data_url(url)
    if found is not None:
        return found
    head, sep, _ = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise RequestError(where + suffix, "expected a data URL `data:<media type>;base64,<data>`")
    raise RequestError(where + suffix, "the data URL's payload is not valid base64")


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 text) of a valid `data:<type>;base64,<data>` URL; None for anything else (`data_url`
    says why, for a request it refuses)."""
    head, sep, payload = url.partition(",")
    if sep and head.startswith("data:") and head.endswith(";base64") and valid_base64(payload):
        return head[5:-7], payload
    return None


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Payloads found valid lately, in the order they were: an agent sends its conversation's images again with every
# turn. Each is kept under a key of its length and two slices of it, which hashes in a small part of the time the
# whole text would (hashing it all cost a third of checking it); a payload found under its key is compared whole
# with the one kept (memcmp), so one that only shares the slices is checked, and then kept in its place. At most
# VALID_KEPT_CHARS of text is kept, the oldest dropped first; a payload longer than VALID_KEPT_ONE is checked each
# time, never kept.
_VALID: dict[tuple[int, str, str], str] = {}
_valid_chars = 0
VALID_KEPT_CHARS = 16 << 20
VALID_KEPT_ONE = VALID_KEPT_CHARS // 8
_SLICE = 48  # characters in each slice of a key


def valid_base64(text: str) -> bool:
    """Whether `text` is strict base64 (whole quanta, at most two `=` at the end): what decoding would accept,
    checked in a quarter of the time decoding takes (bytes.translate deletes the alphabet in C), or found among the
    payloads found valid lately."""
    size = len(text)
    kept = size <= VALID_KEPT_ONE
    if kept:
        middle = size // 2
        key = (size, text[middle : middle + _SLICE], text[-_SLICE:])
        if _VALID.get(key) == text:
            return True
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return False
    unpadded = raw.rstrip(b"=")
    if size % 4 or size - len(unpadded) > 2 or unpadded.translate(None, _BASE64_ALPHABET):
        return False
    if kept:
        _keep_valid(key, text)
    return True


def _keep_valid(key: tuple[int, str, str], text: str) -> None:
    global _valid_chars
    _valid_chars -= len(_VALID.pop(key, ""))  # another payload under the same key: this one takes its place
    _VALID[key] = text
    _valid_chars += len(text)
    while _valid_chars > VALID_KEPT_CHARS:
        _valid_chars -= len(_VALID.pop(next(iter(_VALID))))


# The image_url objects of the usual shape, read by `image_block` with a comparison of key sets.
_URL_ONLY = {"url"}
_URL_AND_DETAIL = {"url", "detail"}


def image_block(part: dict[str, Any], message: str, index: int) -> ImageBlock:
    """The block for the image part `{message}.content[{index}]`, whose keys the caller checked (the path is spelled
    out only for an error). A part of only `type` and `image_url`, its url and a detail, is what an OpenAI-format
    upstream is sent for the block: it is kept on the block (`ImageBlock.openai_part`) and sent as it came, not
    built again. Nothing changes it: the content model's blocks are not changed once made, nor the bodies sent."""
    image = part.get("image_url")
    if type(image) is dict:
        keys = image.keys()
        url = image.get("url")
        detail = image.get("detail")
        if (
            keys in (_URL_ONLY, _URL_AND_DETAIL)
            and type(url) is str
            and url
            and (detail is None or type(detail) is str)
        ):
            as_sent = True  # whether the url is the one the block would be sent with
            if not url.startswith("data:"):
                block = ImageBlock(url=url, detail=detail)
            else:
                media_type, text = split_data_url(url) or data_url(url, f"{message}.content[{index}]", ".image_url.url")
                block = ImageBlock(media_type=media_type, detail=detail, base64=text)
                # A data URL without its media type ("data:;base64,...") is sent with image/png, as the wire names it.
                as_sent = bool(media_type)
            if as_sent and len(part) == 2 and (detail is not None or keys == _URL_ONLY):  # no cache_control or null
                block.openai_part = part
            return block
    image = image or {}
    if not fits(image, IMAGE_KEYS):
        bad_shape(image, IMAGE_KEYS, f"{message}.content[{index}].image_url")
    url = image.get("url")
    if not url:  # (`fits` found it a string or null)
        raise RequestError(f"{message}.content[{index}].image_url.url", "required: an http(s) URL or a base64 data URL")
    if url.startswith("data:"):
        media_type, text = split_data_url(url) or data_url(url, f"{message}.content[{index}]", ".image_url.url")
        return ImageBlock(media_type=media_type, detail=image.get("detail"), base64=text)
    return ImageBlock(url=url, detail=image.get("detail"))
