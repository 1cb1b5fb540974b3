"""Text normalization for synthesis and transcripts.

:func:`normalize` turns written English into the lowercase words a speech
synthesizer speaks and a transcript lists, so that audio and ``text`` agree:

- numbers to words: cardinals (``1,234`` -> ``one thousand two hundred thirty
  four``), decimals (``3.5`` -> ``three point five``), years (``1984`` ->
  ``nineteen eighty four``, ``2009`` -> ``two thousand nine``), decades
  (``1990s`` -> ``nineteen nineties``), ordinals (``3rd`` -> ``third``),
  money (``$5`` -> ``five dollars``), percent (``10%`` -> ``ten percent``);
- abbreviations (``Mr.`` -> ``mister``, ``Dr.`` -> ``doctor``, ``U.S.`` ->
  ``u s``, ``a.m.`` -> ``a m``) and symbols (``&`` -> ``and``, ``*`` ->
  ``star``, ``#`` -> ``pound``);
- punctuation removed, hyphens and dashes become word breaks, apostrophes
  inside words are kept (``don't``).

With ``digit_strings=True`` (telephone prompts, which read numbers the way a
caller dials them) an integer of three or more digits without commas is read
digit by digit (``dial 500`` -> ``dial five zero zero``, ``extension 1234``
-> ``extension one two three four``); decimals and the digits after a period
(``H.323``) keep the rules above.

The output contains only ``[a-z']`` words separated by single spaces.
:func:`split_sentences` cuts running text into sentences without breaking at
abbreviations.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize", "number_to_words", "ordinal_to_words", "year_to_words", "split_sentences"]

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [
    (10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"),
]
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}

# Abbreviations expanded when followed by a period (case-insensitive key).
_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "st": "saint", "jr": "junior",
    "sr": "senior", "vs": "versus", "etc": "et cetera", "gov": "governor", "sen": "senator",
    "rep": "representative", "gen": "general", "lt": "lieutenant", "col": "colonel",
    "capt": "captain", "prof": "professor", "inc": "incorporated", "corp": "corporation",
    "co": "company", "dept": "department", "no": "number", "mt": "mount", "ft": "fort",
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "aug": "august",
    "sept": "september", "sep": "september", "oct": "october", "nov": "november",
    "dec": "december", "approx": "approximately",
}
_SYMBOLS = {
    "&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ",
    "*": " star ", "#": " pound ",
}


def number_to_words(n: int) -> str:
    """Cardinal number words: ``number_to_words(1234) == 'one thousand two hundred thirty four'``."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return number_to_words(high) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """Ordinal number words: ``ordinal_to_words(21) == 'twenty first'``."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_to_words(n: int) -> str:
    """Years as spoken: 1984 -> nineteen eighty four, 1900 -> nineteen hundred,
    2009 -> two thousand nine, 2021 -> twenty twenty one, 1805 -> eighteen oh five."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    if low < 10:
        return number_to_words(high) + " oh " + _ONES[low]
    return number_to_words(high) + " " + number_to_words(low)


def _plural(words: str) -> str:
    """Pluralize the last number word (for decades): ninety -> nineties, six -> sixes."""
    head, _, last = words.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    elif last.endswith(("s", "x")):
        last += "es"
    else:
        last += "s"
    return (head + " " + last).strip()


def _is_year(n: int) -> bool:
    return 1100 <= n <= 2099


def _digits(s: str) -> int:
    return int(s.replace(",", ""))


def _decimal_words(s: str) -> str:
    whole, _, frac = s.partition(".")
    head = number_to_words(_digits(whole)) if whole else "zero"
    return head + " point " + " ".join(_ONES[int(d)] for d in frac)


def _money(m: re.Match) -> str:
    amount, scale = m.group(1), m.group(2)
    if "." in amount:
        words = _decimal_words(amount)
        unit = "dollars"
    else:
        value = _digits(amount)
        words = number_to_words(value)
        unit = "dollar" if value == 1 and not scale else "dollars"
    if scale:
        return f" {words} {scale.lower()} {unit} "
    return f" {words} {unit} "


def _digit_by_digit(text: str) -> str:
    return " " + " ".join(_ONES[int(d)] for d in text) + " "


def _number_token(m: re.Match, digit_strings: bool = False) -> str:
    text = m.group(0)
    if digit_strings and len(text) >= 3 and text.isdigit() and not m.string[:m.start()].endswith("."):
        return _digit_by_digit(text)
    if "." in text:
        return " " + _decimal_words(text) + " "
    if "," in text:
        return " " + number_to_words(_digits(text)) + " "
    n = int(text)
    if len(text) == 4 and _is_year(n):
        return " " + year_to_words(n) + " "
    if len(text) > 1 and text.startswith("0"):
        # Leading zeros (codes, "007"): read digit by digit.
        return _digit_by_digit(text)
    return " " + number_to_words(n) + " "


def _decade(m: re.Match) -> str:
    n = int(m.group(1))
    words = year_to_words(n) if _is_year(n) else number_to_words(n)
    return " " + _plural(words) + " "


def _ordinal(m: re.Match) -> str:
    return " " + ordinal_to_words(_digits(m.group(1))) + " "


def _initialism(m: re.Match) -> str:
    return " " + " ".join(ch for ch in m.group(0).lower() if ch.isalpha()) + " "


def _abbreviation(m: re.Match) -> str:
    return " " + _ABBREVIATIONS[m.group(1).lower()] + " "


_ABBR_RE = re.compile(r"\b(" + "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.", re.IGNORECASE)
_INITIALISM_RE = re.compile(r"\b(?:[A-Za-z]\.){2,}")
_MONEY_RE = re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)(?:\s+(million|billion|trillion|thousand))?\b", re.IGNORECASE)
_ORDINAL_RE = re.compile(r"\b(\d[\d,]*)(?:st|nd|rd|th)\b", re.IGNORECASE)
_DECADE_RE = re.compile(r"\b(\d+0)'?s\b")
_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+")


def normalize(text: str, digit_strings: bool = False) -> str:
    """Normalize written English to lowercase spoken words (see the module doc;
    ``digit_strings``: integers of 3+ digits read digit by digit).

    >>> normalize("Mr. Smith paid $5 on the 3rd of May, 1984 -- 10% more!")
    'mister smith paid five dollars on the third of may nineteen eighty four ten percent more'
    """
    text = unicodedata.normalize("NFKC", text)
    text = (
        text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
        .replace("\u2014", " ").replace("\u2013", " ")
    )
    text = _MONEY_RE.sub(_money, text)
    text = _ABBR_RE.sub(_abbreviation, text)
    text = _INITIALISM_RE.sub(_initialism, text)
    text = _ORDINAL_RE.sub(_ordinal, text)
    text = _DECADE_RE.sub(_decade, text)
    text = _NUMBER_RE.sub(lambda m: _number_token(m, digit_strings), text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = text.lower()
    # Letters glued to digits were split above; anything not a letter or an
    # apostrophe is a word break.
    text = re.sub(r"[^a-z']+", " ", text)
    words = []
    for word in text.split():
        word = word.strip("'")
        if word:
            words.append(word)
    return " ".join(words)


_SENTENCE_END_RE = re.compile(r"([.!?]+[\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences at ``. ! ?`` followed by a capital or
    digit, never after a known abbreviation (``Mr. Smith``) or an initial."""
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for m in _SENTENCE_END_RE.finditer(text):
        before = text[start : m.start(1)]
        last_word = before.rsplit(" ", 1)[-1].lower().strip("\"'(")
        if m.group(1).startswith(".") and (
            last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()) or "." in last_word
        ):
            continue
        sentences.append(text[start : m.end(1)].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
