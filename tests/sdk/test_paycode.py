"""Pay codes, device side: the format, the one-time value, the generator's counter, and the images."""

from __future__ import annotations

import ast
import hashlib
import hmac
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tosplus.sdk import paycode
from tosplus.sdk.paycode import (
    PayCodeGenerator,
    PayCodesExhaustedError,
    barcode_svg,
    code128_values,
    code_svg,
    format_code,
    grouped,
    luhn_digit,
    luhn_ok,
    normalise,
    one_time_value,
    time_step,
    truncate,
)

KEY = bytes(range(32))
T0 = 29_000_000 * 60.0  # the start of step 29,000,000 (in 2025)
codes = st.builds(format_code, st.integers(0, 10**8 - 1), st.integers(0, 10**7 - 1))


def test_dynamic_truncation_is_rfc_4226s() -> None:
    # RFC 4226 §5.4: this digest truncates to 0x50ef7f19.
    assert truncate(bytes.fromhex("1f8698690e02ca16618550ef7f19da8e945b555a")) == 0x50EF7F19


def test_one_time_value_is_the_documented_hmac() -> None:
    message = b"tos+paycode/v1" + (12345678).to_bytes(4, "big") + (29_000_000).to_bytes(8, "big") + bytes(4)
    digest = hmac.new(KEY, message, hashlib.sha256).digest()
    offset = digest[31] & 15
    expected = (int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF) % 10**7
    assert one_time_value(KEY, 12345678, 29_000_000, 0) == expected == 3132202  # pinned: devices in the field
    assert one_time_value(KEY, 12345678, 29_000_000, 1) == 1480045
    assert format_code(12345678, 3132202) == "281234567831322021"


@given(codes)
def test_a_code_is_18_digits_with_the_prefix_and_a_valid_check_digit(code: str) -> None:
    assert len(code) == 18 and code.isdigit() and code.startswith("28") and luhn_ok(code)


@given(codes, st.integers(2, 17), st.integers(1, 9))
def test_luhn_catches_every_single_wrong_digit(code: str, position: int, shift: int) -> None:
    wrong = code[:position] + str((int(code[position]) + shift) % 10) + code[position + 1 :]
    assert not luhn_ok(wrong)


@given(codes, st.integers(2, 16))
def test_luhn_catches_swapped_neighbours_except_09(code: str, i: int) -> None:
    swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
    if code[i] != code[i + 1] and {code[i], code[i + 1]} != {"0", "9"}:
        assert not luhn_ok(swapped)


def test_luhn_reference_number_and_ranges() -> None:
    assert luhn_digit("7992739871") == "3" and luhn_ok("79927398713") and not luhn_ok("79927398710")
    with pytest.raises(ValueError):
        format_code(10**8, 0)
    with pytest.raises(ValueError):
        format_code(0, 10**7)


def test_grouping_for_people_and_back() -> None:
    code = format_code(12345678, 3132202)
    assert grouped(code) == "2812 3456 7831 3220 21"
    assert normalise(grouped(code)) == normalise("2812-3456-7831-3220-21") == code


def test_generator_rotates_every_step_and_moves_on_after_use() -> None:
    gen = PayCodeGenerator(12345678, KEY)
    first = gen.current(T0)
    assert gen.current(T0 + 59.9) == first and gen.seconds_left(T0 + 20) == pytest.approx(40)
    assert gen.current(T0 + 60) != first
    second = gen.next_after_use(T0 + 10)
    assert second != first and gen.position == (29_000_000, 1) and gen.current(T0 + 30) == second
    assert second == format_code(12345678, one_time_value(KEY, 12345678, 29_000_000, 1))
    assert gen.current(T0 + 61) == format_code(12345678, one_time_value(KEY, 12345678, 29_000_001, 0))


def test_generator_borrows_one_step_ahead_then_asks_to_wait() -> None:
    gen = PayCodeGenerator(7, KEY, max_counter=2)
    gen.next_after_use(T0 + 5)  # counter 1
    borrowed = gen.next_after_use(T0 + 5)
    assert gen.position == (29_000_001, 0) and borrowed == gen.current(T0 + 70)
    assert gen.seconds_left(T0 + 5) == pytest.approx(115)
    gen.next_after_use(T0 + 5)  # counter 1 of the borrowed step
    with pytest.raises(PayCodesExhaustedError) as refused:
        gen.next_after_use(T0 + 5)
    assert refused.value.wait_s == pytest.approx(55)
    assert gen.next_after_use(T0 + 60) == gen.current(T0 + 61)  # the next step has come: step + 2 may be borrowed


def test_generator_restores_its_position_and_refuses_bad_keys() -> None:
    gen = PayCodeGenerator(7, KEY, position=(29_000_000, 3))
    assert gen.current(T0) == format_code(7, one_time_value(KEY, 7, 29_000_000, 3))
    with pytest.raises(ValueError):
        PayCodeGenerator(7, b"short")
    with pytest.raises(ValueError):
        PayCodeGenerator(10**8, KEY)


def test_time_step() -> None:
    assert time_step(T0) == time_step(T0 + 59.999) == 29_000_000 and time_step(T0 + 60) == 29_000_001


def test_qr_svg_is_a_standalone_image() -> None:
    root = ET.fromstring(code_svg(format_code(12345678, 3132202)))
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and int(root.attrib["width"]) > 0


def test_code128_table_is_well_formed() -> None:
    table = paycode._C128
    assert len(table) == 107 and len(set(table)) == 107
    for widths in table[:106]:  # 3 bars and 3 spaces, 11 modules, an even number of bar modules
        digits = [int(w) for w in widths]
        assert len(digits) == 6 and sum(digits) == 11 and sum(digits[0::2]) % 2 == 0
    assert sum(int(w) for w in table[106]) == 13  # the stop pattern


def test_code128_check_symbol() -> None:
    # Start C (105) + 12, 34, 56, 78 weighted by position: 665 mod 103 = 47.
    assert code128_values("12345678") == [105, 12, 34, 56, 78, 47, 106]
    with pytest.raises(ValueError):
        code128_values("123")


@given(codes)
def test_barcode_svg_reads_back_as_the_code(code: str) -> None:
    root = ET.fromstring(barcode_svg(code, module=1))
    rects = list(root.iter("{http://www.w3.org/2000/svg}rect"))[1:]  # the first one is the white background
    bars = [(int(r.attrib["x"]), int(r.attrib["width"])) for r in rects]
    widths = []  # bar, space, bar, ... from the rectangles' positions
    for (x, w), following in zip(bars, [*bars[1:], None], strict=True):
        widths.append(w)
        if following is not None:
            widths.append(following[0] - x - w)
    symbols = ["".join(map(str, widths[i : i + 6])) for i in range(0, len(widths) - 7, 6)]
    values = [paycode._C128.index(s) for s in symbols]
    assert values[0] == 105 and "".join(f"{v:02d}" for v in values[1:-1]) == code
    assert "".join(map(str, widths[-7:])) == paycode._C128[106]
    assert values[-1] == code128_values(code)[-2]


def test_paycode_module_imports_nothing_of_the_hub() -> None:
    code = "import sys, tosplus.sdk.paycode\nprint(sorted(m for m in sys.modules if m.startswith('tosplus')))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    assert "tosplus.sdk.paycode" in loaded
    assert all(m == "tosplus" or m == "tosplus.sdk" or m.startswith("tosplus.sdk.") for m in loaded), loaded
    tree = ast.parse(Path(paycode.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "hmac", "io", "secrets", "time", "segno"}, imported
