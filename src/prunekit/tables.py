"""Aligned plain-text tables, as the reports print them."""

from __future__ import annotations

from typing import Container, Iterable, Sequence


def aligned_table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Container[int] = ()) -> str:
    """The header and rows as aligned text lines, joined by newlines (no trailing newline).

    Each column is as wide as its widest cell (header included); columns are separated by two
    spaces; cells are left-aligned unless their column index is in ``right``; trailing spaces are
    stripped from every line.

    Args:
        header: the column names.
        rows: the rows, each a sequence of cell strings (as many as the header).
        right: the indices of the right-aligned columns, e.g. ``range(1, 3)``.

    Example:
        >>> print(aligned_table(["name", "count", "note"], [["a", "1", "x"], ["bcd", "1,000", ""]], right={1}))
        name  count  note
        a         1  x
        bcd   1,000
    """
    lines = [list(header), *map(list, rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*lines)]
    return "\n".join(
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths)))
        .rstrip()
        for cells in lines)
