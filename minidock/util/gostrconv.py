"""Go's strconv.Quote: how BuildKit's dumps and Go templates print a string."""

from __future__ import annotations


def go_quote(s: str) -> str:
    """Go's strconv.Quote."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'  # (most strings: `ps` quotes every container's command)
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= o <= 0xDCFF:          # undecodable byte (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch.isprintable() or (o > 0x7F and _go_printable(ch)):
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _go_printable(ch: str) -> bool:
    import unicodedata

    return unicodedata.category(ch)[0] in "LMNPS" or ch == " "
