"""Words missing from the lexicon in 'asrkit train ctc': the message names the fix that train has."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from asrkit.data.lexicon import UnknownWordError
from asrkit.tasks.tokens import token_units as ctc_units


def test_unknown_words_name_the_units_lexicon_override(tmp_path):
    (tmp_path / "text").write_text("s-1 the cat\ns-2 the qqzxv\n", encoding="utf-8")
    store = SimpleNamespace(path=tmp_path)
    with pytest.raises(UnknownWordError) as e:
        ctc_units("phone", store, None, None, tmp_path / "units", 0, None)
    msg = str(e.value)
    assert "qqzxv" in msg and "units.lexicon=FILE" in msg
    assert "--lexicon" not in msg and "--oov" not in msg  # 'asrkit train ctc' has neither option
    lex = tmp_path / "lexicon.txt"
    lex.write_text("qqzxv K W IH1 Z\n", encoding="utf-8")
    units = ctc_units("phone", store, None, None, tmp_path / "units", 0, str(lex))
    assert units.kind == "phone" and units.tokenizer.encode(["qqzxv"]) == units.tokenizer.encode_units("k w ih z".split())
