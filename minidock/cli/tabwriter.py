"""Go's text/tabwriter as Docker's table formatter uses it (`ps`, `images`, ...): its own small
module so that `ps`'s default table needs no template engine."""

from __future__ import annotations


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter (tabwidth 1, pad ' ', no flags), as Docker's table formatter uses it:
    tab-terminated cells are aligned per column block; a line without a tab ends the blocks."""
    out: list[str] = []
    block: list[list[str]] = []

    def flush():
        if block:
            _tw_format(block, 0, len(block), [], out, minwidth, padding)
            block.clear()

    lines = text.split("\n")
    trailing = lines.pop() if lines else ""
    for ln in lines:
        cells = ln.split("\t")
        block.append(cells)
        if len(cells) == 1:
            flush()
    flush()
    if trailing:
        out.append(trailing)
    return "".join(out)


def _tw_format(lines, line0, line1, widths, out, minwidth, padding):
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _tw_write(lines, line0, this, widths, out)  # the lines before this column's block
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _tw_format(lines, line0, this, widths + [width], out, minwidth, padding)
        line0 = this
    _tw_write(lines, line0, line1, widths, out)


def _tw_write(lines, line0, line1, widths, out):
    for i in range(line0, line1):
        line = lines[i]
        for j, c in enumerate(line):
            out.append(c.ljust(widths[j]) if j < len(widths) and j < len(line) - 1 else c)
        out.append("\n")
