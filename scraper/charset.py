"""Where a page's charset is decided: BOM, then a declared label, then detection.

Only the encodings a browser would use are trusted: the labels of the WHATWG
Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels), each
read by the Python codec that decodes what browsers decode. Any other label
(``undefined``, ``punycode``, ``utf-7``, ``unicode_escape``, EBCDIC ``cp037``
...) is unknown, as it is to a browser: the page is read as UTF-8 if it is
UTF-8, else as what detection says, and detection is held to the same list.
The text returned never holds a lone surrogate, so it can always be written
out as UTF-8.
"""

from __future__ import annotations

import codecs
import re

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
USER_DEFINED = "x-user-defined"
"""Bytes 0x80-0xFF as private-use characters U+F780-U+F7FF, as the standard says."""
_USER_DEFINED_MAP = {byte: 0xF780 + byte - 0x80 for byte in range(0x80, 0x100)}
_REPLACEMENT = "replacement"

# WHATWG encoding -> (Python codec, its labels). Browsers read the latin-1 and
# ASCII labels as windows-1252 and the GB2312/GBK ones as GB18030; so do we.
_ENCODINGS: dict[str, tuple[str, str]] = {
    "UTF-8": ("utf-8", "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8"),
    "IBM866": ("cp866", "866 cp866 csibm866 ibm866"),
    "ISO-8859-2": (
        "iso8859_2",
        "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2",
    ),
    "ISO-8859-3": (
        "iso8859_3",
        "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3",
    ),
    "ISO-8859-4": (
        "iso8859_4",
        "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4",
    ),
    "ISO-8859-5": (
        "iso8859_5",
        "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5"
        " iso_8859-5:1988",
    ),
    "ISO-8859-6": (
        "iso8859_6",
        "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6"
        " iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    ),
    "ISO-8859-7": (
        "iso8859_7",
        "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7"
        " iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    ),
    "ISO-8859-8": (
        "iso8859_8",
        "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8"
        " iso88598 iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    ),
    "ISO-8859-10": (
        "iso8859_10",
        "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    ),
    "ISO-8859-13": ("iso8859_13", "iso-8859-13 iso8859-13 iso885913"),
    "ISO-8859-14": ("iso8859_14", "iso-8859-14 iso8859-14 iso885914"),
    "ISO-8859-15": (
        "iso8859_15",
        "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    ),
    "ISO-8859-16": ("iso8859_16", "iso-8859-16"),
    "KOI8-R": ("koi8_r", "cskoi8r koi koi8 koi8-r koi8_r"),
    "KOI8-U": ("koi8_u", "koi8-ru koi8-u"),
    "macintosh": ("mac_roman", "csmacintosh mac macintosh x-mac-roman"),
    "windows-874": ("cp874", "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874"),
    "windows-1250": ("cp1250", "cp1250 windows-1250 x-cp1250"),
    "windows-1251": ("cp1251", "cp1251 windows-1251 x-cp1251"),
    "windows-1252": (
        "cp1252",
        "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1"
        " iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    ),
    "windows-1253": ("cp1253", "cp1253 windows-1253 x-cp1253"),
    "windows-1254": (
        "cp1254",
        "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989"
        " l5 latin5 windows-1254 x-cp1254",
    ),
    "windows-1255": ("cp1255", "cp1255 windows-1255 x-cp1255"),
    "windows-1256": ("cp1256", "cp1256 windows-1256 x-cp1256"),
    "windows-1257": ("cp1257", "cp1257 windows-1257 x-cp1257"),
    "windows-1258": ("cp1258", "cp1258 windows-1258 x-cp1258"),
    "x-mac-cyrillic": ("mac_cyrillic", "x-mac-cyrillic x-mac-ukrainian"),
    "GBK": (
        "gb18030",
        "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk",
    ),
    "gb18030": ("gb18030", "gb18030"),
    "Big5": ("big5hkscs", "big5 big5-hkscs cn-big5 csbig5 x-x-big5"),
    "EUC-JP": ("euc_jp", "cseucpkdfmtjapanese euc-jp x-euc-jp"),
    "ISO-2022-JP": ("iso2022_jp", "csiso2022jp iso-2022-jp"),
    "Shift_JIS": (
        "cp932",
        "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    ),
    "EUC-KR": (
        "cp949",
        "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601"
        " ksc_5601 windows-949",
    ),
    # Browsers show a page under these labels as one U+FFFD (they can smuggle markup past
    # filters); a scraper gains nothing from that, so they count as unknown labels.
    "replacement": (
        _REPLACEMENT,
        "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr",
    ),
    "UTF-16BE": ("utf-16-be", "unicodefffe utf-16be"),
    "UTF-16LE": (
        "utf-16-le",
        "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
    ),
    "x-user-defined": (USER_DEFINED, "x-user-defined"),
}


def _canonical(codec: str) -> str:
    return codec if codec in (_REPLACEMENT, USER_DEFINED) else codecs.lookup(codec).name


LABELS: dict[str, str] = {
    label: _canonical(codec) for codec, labels in _ENCODINGS.values() for label in labels.split()
}
"""Every WHATWG encoding label -> the Python codec name that page text is decoded with."""


def _python_names() -> dict[str, str]:
    """Python's own name for each label it knows -> our codec (``latin_1`` -> cp1252)."""
    names: dict[str, str] = {}
    for label, codec in LABELS.items():
        try:
            names.setdefault(codecs.lookup(label).name, codec)
        except LookupError:
            continue
    names.update((codec, codec) for codec in LABELS.values())
    return names


_BY_PYTHON_NAME = _python_names()


def decode(content: bytes, declared: str | None) -> tuple[str, str]:
    """Decode a page: its BOM, else the declared charset (header, else ``<meta>``) if it
    fits, else UTF-8 if it fits, else what detection finds.

    Returns the text and the name of the codec used. ``declared`` is the
    Content-Type header's charset; a label that is not a WHATWG label, or that
    does not decode the bytes (GBK under a utf-8 label, say), is not trusted.
    """
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if content.startswith(bom):
            return _decode(content, name, "replace"), name
    header = _header_codec(declared)
    tried = []
    # The <meta> is looked for only when the header's charset does not decode the page.
    for find in (lambda: header, lambda: _meta_codec(content), lambda: "utf-8"):
        candidate = find()
        if candidate is None or candidate in tried:
            continue
        tried.append(candidate)
        try:
            return _decode(content, candidate, "strict"), candidate
        except UnicodeDecodeError:
            continue
    name = _detect(content) or tried[0]
    return _decode(content, name, "replace"), name


def header_charset(content_type: str) -> str | None:
    """The charset label of a Content-Type header value, if it has one."""
    found = _HEADER_CHARSET.search(content_type)
    return found.group(1) if found else None


def codec_for(label: str) -> str | None:
    """The Python codec that text under the encoding ``label`` is decoded with, or None
    for a label that is not a WHATWG label (or names the replacement encoding)."""
    name = LABELS.get(label.strip(" \t\n\f\r\"'").lower())
    return None if name == _REPLACEMENT else name


def _header_codec(declared: str | None) -> str | None:
    return codec_for(declared) if declared else None


def _meta_codec(content: bytes) -> str | None:
    found = _META_CHARSET.search(content, 0, 8192)
    if not found:
        return None
    name = codec_for(found.group(1).decode("ascii"))
    # A <meta> that could be read as ASCII is not UTF-16; the standard reads it as UTF-8.
    if name in ("utf-16-le", "utf-16-be"):
        return "utf-8"
    if name == USER_DEFINED:
        return "cp1252"
    return name


def _detect(content: bytes) -> str | None:
    """The most likely of the allowed codecs for ``content``, by charset_normalizer."""
    from charset_normalizer import from_bytes

    for match in from_bytes(content[:200_000]):
        try:
            name = _BY_PYTHON_NAME.get(codecs.lookup(match.encoding).name)
        except LookupError:
            continue
        if name is not None and name not in (_REPLACEMENT, USER_DEFINED):
            return name
    return None


def _decode(content: bytes, name: str, errors: str) -> str:
    if name == USER_DEFINED:
        text = content.decode("latin-1").translate(_USER_DEFINED_MAP)
    else:
        text = content.decode(name, errors)
    # No codec of LABELS yields a lone surrogate, under "strict" or "replace" (a test
    # decodes random bytes with each): unlike utf-7 or unicode_escape, which are not
    # labels. So the text is not scanned for one, which cost 170 us a page of 80 KB.
    return text
