"""Tables measure text in display columns (wcwidth), not characters: a CJK character
takes two columns, so counting characters misaligned every column after a CJK name."""

from __future__ import annotations

from wcwidth import wcswidth

from ledger.cli.common import cut_to_width, display_width, fit, pad, render_table

CJK = "包头稀土高新技术产业开发区有限公司"


def _column_of(line: str, needle: str) -> int:
    return wcswidth(line[: line.index(needle)])


def test_columns_after_a_cjk_name_line_up() -> None:
    rows = [
        {"party_id": "acme", "name": "Acme Motors Inc", "country": "US"},
        {"party_id": "baotou", "name": CJK, "country": "CN"},
    ]
    lines = render_table(rows, ["party_id", "name", "country"], width=100).splitlines()
    country = _column_of(lines[0], "country")
    assert _column_of(lines[2], "US") == _column_of(lines[3], "CN") == country
    # The rule under the header is as wide as the widest name (34 columns, 17 characters).
    assert lines[1].split("  ")[1] == "-" * 34


def test_a_cjk_name_wraps_within_the_width_and_loses_nothing() -> None:
    rows = [{"party_id": "baotou", "name": CJK, "country": "CN", "note": "x"}]
    text = render_table(rows, ["party_id", "name", "country", "note"], width=40)
    lines = text.splitlines()
    assert all(wcswidth(line) <= 40 for line in lines), text
    name_start = _column_of(lines[0], "name")
    pieces = []
    for line in lines[2:]:
        # Cut at the name's display column: characters, not bytes or columns.
        k, used = 0, 0
        while used < name_start:
            used += wcswidth(line[k])
            k += 1
        pieces.append(line[k:].split("  ")[0].strip())
    assert "".join(pieces) == CJK


def test_width_helpers() -> None:
    assert display_width(CJK) == 34 and display_width("abc") == 3
    assert display_width("e\u0301") == 1  # a combining accent takes no column
    assert display_width("a\x1bb") == 2  # a control character takes none either
    assert pad("稀土", 6) == "稀土  "
    assert cut_to_width("稀土abc", 3) == "稀"
    assert fit(CJK, 9) == "包头稀土…" and display_width(fit("ab", 9)) == 9
