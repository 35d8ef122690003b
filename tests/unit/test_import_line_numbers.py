"""The streaming import's line numbers by position (``ledger.importing._LineNumbers``):
kept in a temporary file that moves from memory to disk past 1 MiB, read back only to
name the first line of an event id that appears twice."""

from __future__ import annotations

from ledger.importing import _LineNumbers


def test_line_numbers_read_back_across_chunks_gaps_and_the_move_to_disk() -> None:
    numbers = _LineNumbers()
    try:
        numbers.put([(0, 1), (1, 2), (2, 4)])
        numbers.put([])  # (a chunk of duplicates only writes nothing)
        numbers.put([(4, 9), (3, 7)])  # unsorted within a chunk
        numbers.put([(10, 30)])  # a gap in the positions (PostgreSQL may leave one)
        far = 300_000  # 1.2 MB into the file: past what is kept in memory
        numbers.put([(far, 4_000_000_000), (far + 1, 5)])
        assert [numbers.get(k) for k in range(6)] == [1, 2, 4, 7, 9, 0]
        assert [numbers.get(k) for k in (9, 10, 11)] == [0, 30, 0]
        assert (numbers.get(far), numbers.get(far + 1), numbers.get(far + 2)) == (
            4_000_000_000,
            5,
            0,
        )
        assert numbers.get(17) == 0  # in the gap the far write left
    finally:
        numbers.close()
