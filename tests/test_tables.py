"""The aligned-table helper the reports share."""

from prunekit.tables import aligned_table


def test_columns_are_as_wide_as_their_widest_cell_and_two_spaces_apart():
    assert aligned_table(["a", "bb"], [["ccc", "d"]]).split("\n") == ["a    bb", "ccc  d"]


def test_right_aligned_columns_pad_on_the_left():
    assert aligned_table(["n", "count"], [["x", "7"], ["yy", "1,000"]], right={1}).split("\n") == [
        "n   count", "x       7", "yy  1,000"]


def test_trailing_spaces_are_stripped():
    table = aligned_table(["name", "note"], [["a", ""], ["b", "long note"]], right=range(0))
    assert table == "name  note\na\nb     long note"


def test_no_rows_gives_the_header_only():
    assert aligned_table(["a", "b"], [], right={0, 1}) == "a  b"


def test_rows_may_be_any_iterable():
    assert aligned_table(("x",), ((c,) for c in ["1", "22"]), right=[0]) == " x\n 1\n22"
