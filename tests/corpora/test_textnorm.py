"""Text normalization: numbers, ordinals, years, money, abbreviations, punctuation."""
from __future__ import annotations

import re

import pytest

from asrkit.corpora.textnorm import normalize, number_to_words, ordinal_to_words, split_sentences, year_to_words


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty two"),
        (100, "one hundred"), (101, "one hundred one"), (999, "nine hundred ninety nine"),
        (1000, "one thousand"), (1234, "one thousand two hundred thirty four"),
        (1_000_000, "one million"), (2_500_000_000, "two billion five hundred million"),
        (-3, "minus three"),
    ],
)
def test_cardinals(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"), (9, "ninth"), (12, "twelfth"),
     (20, "twentieth"), (21, "twenty first"), (100, "one hundredth"), (103, "one hundred third")],
)
def test_ordinals(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1984, "nineteen eighty four"), (1900, "nineteen hundred"), (1805, "eighteen oh five"),
     (2000, "two thousand"), (2009, "two thousand nine"), (2021, "twenty twenty one")],
)
def test_years(n, words):
    assert year_to_words(n) == words


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr. Smith paid $5 on the 3rd of May, 1984 -- 10% more!",
         "mister smith paid five dollars on the third of may nineteen eighty four ten percent more"),
        ("In the 1990s, U.S. output grew 3.5 percent; 1,000,000 jobs.",
         "in the nineteen nineties u s output grew three point five percent one million jobs"),
        ("It cost $1.5 billion in 2009.", "it cost one point five billion dollars in two thousand nine"),
        ("$1 and $20", "one dollar and twenty dollars"),
        ("Press * to toggle, # to exit & 2 + 2 = 4", "press star to toggle pound to exit and two plus two equals four"),
        ("Don't call at 8 a.m. on the 22nd.", "don't call at eight a m on the twenty second"),
        ("Dr. Jones and St. Louis", "doctor jones and saint louis"),
        ("well-known \u201cquotes\u201d \u2014 and \u2018single\u2019 ones", "well known quotes and single ones"),
        ("Call 007 or 911", "call zero zero seven or nine hundred eleven"),
        ("", ""),
        ("?!...", ""),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_normalize_output_alphabet():
    text = "The 1st quarter of 2020: revenue up 12.5% to $3,400 (vs. $2,900), e.g. in the U.K. & N.Y.C.!"
    out = normalize(text)
    assert re.fullmatch(r"[a-z']+( [a-z']+)*", out), out
    assert "first quarter of twenty twenty" in out
    assert "three thousand four hundred dollars" in out and "versus" in out


def test_split_sentences_respects_abbreviations():
    text = 'Mr. Smith went to Washington. He said: "Hi!" Then U.S. troops left? 1990 was good. the end'
    assert split_sentences(text) == [
        "Mr. Smith went to Washington.", 'He said: "Hi!"', "Then U.S. troops left?", "1990 was good. the end",
    ]


def test_digit_strings_read_dialled_numbers_digit_by_digit():
    assert normalize("extension 1234 in 1984") == "extension twelve thirty four in nineteen eighty four"
    assert normalize("extension 1234 in 1984", digit_strings=True) == \
        "extension one two three four in one nine eight four"
    assert normalize("dial 8500 or 12, 1,500 or 2.50", digit_strings=True) == \
        "dial eight five zero zero or twelve one thousand five hundred or two point five zero"
