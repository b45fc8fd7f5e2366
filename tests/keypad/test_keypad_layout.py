"""The random layout: a permutation, uniform over positions, from the right source."""

from __future__ import annotations

import random
import secrets

from hypothesis import given
from hypothesis import strategies as st

from splitvault.keypad import (
    POSITION_HINTS,
    POSITION_KEYS,
    POSITIONS,
    Layout,
    SecureKeypad,
    new_layout,
)
from splitvault.keypad._layout import BLANKS, COLUMNS, ROWS

LAYOUTS = 20_000
"""Samples for the uniformity tests: about 1,667 expected per (digit, position) cell."""

CHI2_999_DF110 = 161.581
"""0.999 quantile of chi-square with 110 degrees of freedom (10 digits x (12 - 1)
positions), as scipy.stats.chi2.ppf(0.999, 110) gives; computed here from the
regularized incomplete gamma function, since scipy is not a dependency."""

CHI2_999_DF10 = 29.588
"""0.999 quantile of chi-square with 10 degrees of freedom (11 categories, the 10 digits
and "blank", at one position); standard tables, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4."""


def _counts(layouts: list[Layout]) -> list[list[int]]:
    """counts[symbol][position], symbol 0-9 for digits and 10 for a blank."""
    counts = [[0] * POSITIONS for _ in range(11)]
    for layout in layouts:
        for position, digit in enumerate(layout):
            counts[10 if digit is None else digit][position] += 1
    return counts


def _digit_chi2(counts: list[list[int]], n: int) -> float:
    expected = n / POSITIONS
    return sum((observed - expected) ** 2 / expected for row in counts[:10] for observed in row)


def _naive_biased_shuffle(rng: random.Random) -> Layout:
    # The classic mistake: swap each cell with *any* cell. n^n paths onto n! orders.
    cells: list[int | None] = [*range(10), *([None] * BLANKS)]
    for i in range(len(cells)):
        j = rng.randrange(len(cells))
        cells[i], cells[j] = cells[j], cells[i]
    return tuple(cells)


@given(seed=st.integers(min_value=0, max_value=2**64))
def test_every_layout_is_a_permutation_of_ten_digits_and_two_blanks(seed: int) -> None:
    """Any seed gives 12 positions holding each digit once and exactly two blanks."""
    layout = new_layout(random.Random(seed))
    assert len(layout) == POSITIONS == ROWS * COLUMNS == 12
    assert sorted(d for d in layout if d is not None) == list(range(10))
    assert layout.count(None) == BLANKS == 2


def test_layouts_are_uniform_over_positions_chi_square() -> None:
    """Over 20,000 seeded layouts every digit is at every position about 1/12 of the time."""
    rng = random.Random(20_240_601)
    layouts = [new_layout(rng) for _ in range(LAYOUTS)]
    counts = _counts(layouts)
    assert all(count > 0 for row in counts for count in row), "a digit never seen somewhere"
    assert _digit_chi2(counts, LAYOUTS) < CHI2_999_DF110


def test_blanks_are_uniform_over_positions_chi_square() -> None:
    """At each position the 10 digits and the blank appear in the 1:...:1:2 proportion."""
    rng = random.Random(7)
    counts = _counts([new_layout(rng) for _ in range(LAYOUTS)])
    for position in range(POSITIONS):
        expected = [LAYOUTS / POSITIONS] * 10 + [LAYOUTS * BLANKS / POSITIONS]
        observed = [counts[symbol][position] for symbol in range(11)]
        chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
        assert chi2 < CHI2_999_DF10, f"position {position}"


def test_uniformity_check_catches_a_biased_shuffle() -> None:
    """The chi-square check has teeth: it rejects the naive swap-with-any shuffle."""
    rng = random.Random(20_240_601)
    counts = _counts([_naive_biased_shuffle(rng) for _ in range(LAYOUTS)])
    assert _digit_chi2(counts, LAYOUTS) > CHI2_999_DF110


def test_keypad_draws_from_system_random_by_default() -> None:
    """Without an injected rng the keypad uses secrets.SystemRandom (the OS CSPRNG)."""
    assert isinstance(SecureKeypad()._rng, secrets.SystemRandom)


def test_position_key_map_is_a_block_of_distinct_non_digit_keys() -> None:
    """12 distinct position keys, none of them a digit key, each with a visible hint."""
    assert len(set(POSITION_KEYS)) == len(POSITION_HINTS) == POSITIONS
    assert not any(key.isdigit() for key in POSITION_KEYS)
