"""Coupon codes: entropy, format, forgiving input, and a check symbol that catches typos."""

from __future__ import annotations

import itertools
import math

from offers import codes


def test_codes_carry_at_least_64_random_bits() -> None:
    assert math.log2(len(codes.ALPHABET)) * codes.DATA_SYMBOLS >= 64
    assert len(set(codes.ALPHABET)) == 32 and not set("ILOU") & set(codes.ALPHABET)


def test_codes_are_unique_and_well_formed() -> None:
    made = [codes.new_code() for _ in range(100_000)]
    assert len(set(made)) == len(made)
    for code in made[:1000]:
        assert len(code) == codes.LENGTH
        assert codes.normalize(code) == code
        shown = codes.display(code)
        assert [len(g) for g in shown.split("-")] == [4, 4, 4, 2]


def test_typing_is_forgiving() -> None:
    code = codes.new_code()
    shown = codes.display(code)
    assert codes.normalize(shown) == code
    assert codes.normalize(shown.lower()) == code
    assert codes.normalize(" ".join(code)) == code
    lookalike = code.replace("1", "I").replace("0", "O")
    assert codes.normalize(lookalike) == code
    assert codes.normalize(code.replace("1", "l")) == code


def test_wrong_lengths_and_symbols_are_refused() -> None:
    code = codes.new_code()
    assert codes.normalize(code[:-1]) is None
    assert codes.normalize(code + "0") is None
    assert codes.normalize("") is None
    assert codes.normalize("U" + code[1:]) is None  # U is a check symbol only
    assert codes.normalize(code[:5] + "!" + code[6:]) is None


def test_every_single_substitution_and_adjacent_swap_is_caught() -> None:
    for _ in range(20):
        code = codes.new_code()
        data = code[: codes.DATA_SYMBOLS]
        for i, c in itertools.product(range(codes.LENGTH), codes.CHECK_ALPHABET):
            if c == code[i] or (i < codes.DATA_SYMBOLS and c not in codes.ALPHABET):
                continue
            assert codes.normalize(code[:i] + c + code[i + 1 :]) is None, (code, i, c)
        for i in range(codes.DATA_SYMBOLS - 1):
            if data[i] == data[i + 1]:
                continue
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert codes.normalize(swapped) is None, (code, i)


def test_a_typo_is_told_apart_from_what_cannot_be_a_code() -> None:
    code = codes.new_code()
    wrong = "0" if code[-1] != "0" else "1"
    assert codes.is_mistyped(code[:-1] + wrong)
    assert codes.is_mistyped(codes.display(code[:3] + code[4] + code[3] + code[5:])) or (
        code[3] == code[4]
    )
    assert not codes.is_mistyped(code)
    assert not codes.is_mistyped(codes.display(code).lower())
    for not_a_code in ("", "GUESS1", code[:-1], code + "0", "U" + code[1:]):
        assert not codes.is_mistyped(not_a_code), not_a_code
