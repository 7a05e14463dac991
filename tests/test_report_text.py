"""The human-format helpers every renderer shares."""

from alexcost.units import byte_unit, bytes_text, commas, short, size_text


def test_numbers_in_words():
    assert commas(62369152) == "62,369,152"
    assert short(3747200) == "3.7 million" and short(1077284224) == "1.08 billion"
    assert short(62369152) == "62.4 million"  # the seed's "62.3 million" truncates
    assert short(999) == "999" and short(1500) == "1.5 thousand"
    assert size_text((96, 55, 55)) == "96 * 55 * 55"


def test_bytes_in_binary_units():
    """Memory is written in binary units everywhere: 1 KiB = 1,024 bytes, 1 MiB = 1,024 KiB, ..."""
    assert bytes_text(1023) == "1,023 B" and bytes_text(1024) == "1.0 KiB"
    assert bytes_text(4 * 37748736) == f"{4 * 37748736 / 2**20:.1f} MiB" == "144.0 MiB"  # fc6's float32 weights
    assert bytes_text(234493952, 2) == f"{234493952 / 2**20:.2f} MiB" == "223.63 MiB"
    assert bytes_text(80 * 2**30, 0) == "80 GiB"
    assert bytes_text(36013 * 2**40) == "36,013.0 TiB"
    assert byte_unit(5 * 2**20) == ("MiB", 2**20) and byte_unit(2**20 - 1) == ("KiB", 2**10)
    assert byte_unit(10) == ("B", 1)
