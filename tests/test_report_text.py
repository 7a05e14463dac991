"""The human-format helpers every renderer shares."""

from alexcost.units import byte_unit, bytes_text, commas, short, size_text


def test_numbers_in_words():
    assert commas(62369152) == "62,369,152"
    assert short(3747200) == "3.7 million" and short(1077284224) == "1.08 billion"
    assert short(62369152) == "62.4 million"  # the seed's "62.3 million" truncates
    assert short(999) == "999" and short(1500) == "1.5 thousand"
    assert size_text((96, 55, 55)) == "96 * 55 * 55"


def test_bytes_in_decimal_units():
    assert bytes_text(999) == "999 B" and bytes_text(1000) == "1.0 kB"
    assert bytes_text(4 * 37748736) == "151.0 MB"
    assert bytes_text(234493952, 2) == "234.49 MB"
    assert bytes_text(36013 * 10**9) == "36,013.0 GB"
    assert byte_unit(5 * 10**6) == ("MB", 10**6) and byte_unit(10) == ("B", 1)
