"""Decoding text files: UTF-8, or one line naming the encoding the bytes look like."""

from __future__ import annotations

from typing import Optional

_BOMS = (  # longest first: a UTF-32 LE mark starts with the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE"),
)


def decode_text(data: bytes) -> tuple[Optional[str], Optional[str]]:
    """(text, None) for UTF-8 bytes (a leading byte-order mark removed), else (None, problem)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return None, f"is {name} text, not UTF-8 (it starts with a {name[:6]} byte-order mark); convert it: " \
                         f"`iconv -f {name} -t UTF-8`"
    if b"\x00" in data:  # valid UTF-8, but no text file holds NUL: UTF-16 without a mark, or binary
        guess, source = _guess_encoding(data)
        convert = f"; convert it: `iconv -f {source} -t UTF-8`" if source else ""
        return None, f"is not UTF-8 text: it holds NUL bytes (offset {data.index(0)}); it looks like {guess}{convert}"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        guess, source = _guess_encoding(data)
        convert = f"; convert it: `iconv -f {source} -t UTF-8`" if source else ""
        return None, f"is not UTF-8 text: byte 0x{data[error.start]:02x} at offset {error.start} (line {line}); " \
                     f"it looks like {guess}{convert}"


def _guess_encoding(data: bytes) -> tuple[str, Optional[str]]:
    sample = data[:65536]
    if sample.count(b"\x00") > len(sample) // 8:
        odd, even = sample[1::2].count(b"\x00"), sample[0::2].count(b"\x00")
        if odd > len(sample) // 4 or even > len(sample) // 4:
            return "UTF-16 without a byte-order mark", "UTF-16LE" if odd > even else "UTF-16BE"
        return "binary data, not text", None
    if sample.count(b"\x00"):
        return "binary data, not text", None
    try:
        data.decode("cp1252")
        return "Latin-1 / Windows-1252", "WINDOWS-1252"
    except UnicodeDecodeError:
        return "an 8-bit encoding other than UTF-8", "LATIN1"
