"""Cold-start reasoning written from a record's fields (data_prep/identifier_trace.py)."""

import pytest

from data_prep.identifier_trace import canonical_code, identifier_trace, is_code


@pytest.mark.parametrize(
    ("token", "code"),
    [("pslx350h", True), ("kx-fa83", True), ("010-10823-01", True), ("970118-0403", True), ("f3h982-10", True),
     ("5.8ghz", False), ("4-port", False), ("46", False), ("802.11", False), ("1080p", False), ("sony", False), ("3g", False)],
)
def test_model_numbers_are_told_from_measures_and_words(token, code):
    assert is_code(token) is code


def test_two_shops_spelling_one_part_get_one_model_string():
    abt = identifier_trace("panasonic black toner cartridge kx-fa83")
    buy = identifier_trace("panasonic kxfa83 toner")
    assert "model: kxfa83" in abt and "model: kxfa83" in buy
    assert canonical_code("KX-FA83") == "kxfa83"


def test_columns_win_over_the_title_and_parts_it_cannot_tell_are_left_out():
    assert identifier_trace("7.0 cu . ft. super capacity electric dryer med5900tw") == "model: med5900tw; type: capacity electric dryer"
    trace = identifier_trace("acme widget", '{"brand": "Initech", "modelno": "IN-42x"}')
    assert trace == "brand: initech; model: in42x; type: acme widget"
    assert identifier_trace("") == "" and identifier_trace("lg navy blue steamwasher 27 '") == "brand: lg; type: navy blue steamwasher"
    long = identifier_trace("garmin a1b2 c3d4 e5f6 cable")
    assert long == "brand: garmin; model: a1b2, c3d4; type: cable"  # at most two model numbers
