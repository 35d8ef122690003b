"""`ledger status`'s holding line, as rendered (no services: the line alone)."""

from ledger.cli.stream import _holding_line


def test_a_consumer_name_with_control_characters_is_shown_escaped() -> None:
    hold = {
        "consumer": "evil\x1b[2J\x07name",
        "projector": False,
        "unacknowledged": 3,
        "seconds_since_ack": 12.0,
        "stalled": True,
    }
    line = _holding_line(hold, 300.0)
    assert "\x1b" not in line and "\x07" not in line
    assert "evil\\x1b[2J\\x07name" in line
    assert "3 message(s)" in line and "STALLED" in line
