"""Plain-text tables (``cli.common.render_table``): fit the width, lose nothing, keep
dates and statuses whole, split long ids after their hyphens."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.cli.common import _wrap_words, render_table


def test_a_word_that_fits_a_line_is_never_split() -> None:
    assert _wrap_words("through 2026-11-26", 12) == ["through", "2026-11-26"]
    assert _wrap_words("until 2026-11-26 (UTC)", 10) == ["until", "2026-11-26", "(UTC)"]


def test_a_long_id_splits_after_its_hyphens_then_is_cut() -> None:
    assert _wrap_words("cn-gl-2025-ningbo-yunsheng-001", 16) == [
        "cn-gl-2025-",
        "ningbo-yunsheng-",
        "001",
    ]
    # In running text the id continues the line it starts on.
    assert _wrap_words("CN implemented busan-cn-general-licences", 21) == [
        "CN implemented busan-",
        "cn-general-licences",
    ]
    assert _wrap_words("syntheticdiamond", 6) == ["synthe", "ticdia", "mond"]


def test_measures_like_table_keeps_dates_whole_and_cuts_only_the_last_column() -> None:
    rows = [
        {
            "measure": "cn-counter-tariff-34pct",
            "clause": "cl.2-graphite",
            "effect": "denied-in-principle",
            "dest": "US",
            "users": "military",
            "status": "suspended",
            "when": "through 2026-11-26",
            "items": ", ".join(f"item-{i} with a long description" for i in range(12)),
        }
    ]
    table = render_table(rows, list(rows[0]), width=100)
    lines = table.splitlines()
    assert all(len(line) <= 100 for line in lines), table
    assert "2026-11-26" in table  # the date is on one line
    assert "suspended" in table and "military" in table
    assert lines[-1].rstrip().endswith("…")  # the free-text last column is cut after 3 lines
    assert len(lines) == 2 + 3


cell_text = st.lists(
    st.text(alphabet="abcdefgh-0123", min_size=1, max_size=30), min_size=1, max_size=4
).map(" ".join)


@given(
    cells=st.lists(cell_text, min_size=5, max_size=5),
    width=st.integers(min_value=60, max_value=120),
)
def test_tables_fit_the_width_and_lose_no_character(cells: list[str], width: int) -> None:
    columns = ["identifier", "refers to", "c", "one-sided for", "text"]
    table = render_table([dict(zip(columns, cells, strict=True))], columns, width=width)
    lines = table.splitlines()
    assert all(len(line) <= width for line in lines), table
    # Re-assemble titles and cells from the fixed-width column slices: every character of
    # every title, and of every cell but the last (which may end in an ellipsis), comes
    # back, in order.
    rule = next(n for n, line in enumerate(lines) if set(line) <= {"-", " "})
    spans, at = [], 0
    for dashes in lines[rule].split("  "):
        spans.append((at, at + len(dashes)))
        at += len(dashes) + 2
    for i, (a, b) in enumerate(spans):
        title = "".join(line[a:b].strip() for line in lines[:rule])
        assert title.replace(" ", "") == columns[i].replace(" ", ""), (columns[i], table)
        if i < len(spans) - 1:
            got = "".join(line[a:b].strip() for line in lines[rule + 1 :])
            assert got.replace(" ", "") == cells[i].replace(" ", ""), (cells[i], table)


def test_a_narrowed_columns_title_wraps_rather_than_being_cut() -> None:
    row = {"pair": "busan-cn-counter-tariff-suspension", "one_sided_for": "0 min", "x": "y"}
    table = render_table([row], list(row), headers={"one_sided_for": "one-sided for"}, width=30)
    assert "…" not in table.splitlines()[0]
    assert "one-sided" in table and "for" in table.splitlines()[1]
