"""``asrkit g2p``: pronunciations for words a lexicon lacks (grapheme to phoneme).

    asrkit g2p train --out exp/g2p                          # on the shipped CMU dict, 10% of words held out
    asrkit g2p apply exp/g2p zyxel asrkit --nbest 2
    asrkit g2p extend data/local/lexicon.txt --words data/lm_text.txt --model exp/g2p -o data/local/lexicon_g2p.txt
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from asrkit import log

g2p_app = typer.Typer(
    help="Grapheme to phoneme: train a joint-sequence (graphone) n-gram on a lexicon, pronounce new words, "
         "extend a lexicon with the words of a text or LM.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_BEAM_HELP = "Hypotheses kept per letter position in the search."


def _check_search(nbest: int, beam: int) -> None:
    from asrkit.errors import UsageError

    if beam < 1:
        raise UsageError(f"--beam {beam}: at least 1")
    if not 1 <= nbest <= beam:
        raise UsageError(f"--nbest {nbest}: 1 to --beam ({beam})")


@g2p_app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (g2p.json, graphones.arpa)."),
    lexicon: Optional[Path] = typer.Option(
        None, "--lexicon", help="Lexicon to learn from (Kaldi lexicon.txt or CMU dict form); default: the shipped CMU dict."),
    order: int = typer.Option(6, "--order", "-n", help="Order of the graphone n-gram, 2 to 6."),
    heldout: float = typer.Option(
        10.0, "--heldout", metavar="PERCENT",
        help="Hold out the words whose crc32(lower-cased word) % 100 < PERCENT, and score the model on them; 0 trains on every word."),
    iterations: int = typer.Option(6, "--iterations", help="EM iterations of the letter-phone alignment."),
    beam: int = typer.Option(20, "--beam", help=_BEAM_HELP + " (for the held-out scoring)"),
    eval_words: Optional[int] = typer.Option(
        None, "--eval-words", metavar="N", help="Score only the first N held-out words (lexicon order)."),
) -> None:
    """Train a g2p model on a lexicon; print its held-out phone and word error rates."""
    from asrkit.data.lexicon import Lexicon
    from asrkit.errors import UsageError
    from asrkit.lm.g2p import train

    _check_search(1, beam)
    if eval_words is not None and eval_words < 1:
        raise UsageError(f"--eval-words {eval_words}: at least 1")
    lex = Lexicon.load(lexicon) if lexicon is not None else Lexicon.default()
    info = train(lex, out, order=order, heldout=heldout, iterations=iterations, beam=beam,
                 eval_limit=eval_words, progress=True)
    h = info.get("heldout")
    if h:
        typer.echo(f"heldout_words {h['words']}")
        typer.echo(f"word_error_rate {h['wer']:.2f}")
        typer.echo(f"word_accuracy {h['word_accuracy']:.2f}")
        typer.echo(f"phone_error_rate {h['per']:.2f}")
    log.info(f"wrote {out}")


@g2p_app.command("apply")
def apply_cmd(
    model: Path = typer.Argument(..., metavar="MODEL", help="g2p model folder (asrkit g2p train)."),
    words: Optional[List[str]] = typer.Argument(None, metavar="[WORDS]...", help="Words to pronounce."),
    words_file: Optional[str] = typer.Option(
        None, "--words", metavar="FILE", help="Pronounce every distinct token of FILE (a word list, a text, or an ARPA LM's words); '-' = stdin."),
    nbest: int = typer.Option(1, "--nbest", metavar="N", help="Pronunciations per word, best first."),
    beam: int = typer.Option(20, "--beam", help=_BEAM_HELP),
) -> None:
    """Print lexicon lines 'word p1 p2 ...' for WORDS (or --words FILE): NBEST per word."""
    from asrkit.errors import UsageError
    from asrkit.lm.g2p import G2PModel, pronounce_words, read_word_list

    _check_search(nbest, beam)
    if not words and words_file is None:
        raise UsageError("give words to pronounce, or --words FILE")
    if words and words_file is not None:
        raise UsageError("give either WORDS or --words FILE, not both")
    todo = list(words) if words else read_word_list(words_file)
    m = G2PModel.load(model)
    for line in pronounce_words(m, todo, nbest=nbest, beam=beam):
        typer.echo(line)


@g2p_app.command("extend")
def extend_cmd(
    lexicon: str = typer.Argument(..., metavar="LEX", help="Lexicon to extend (Kaldi lexicon.txt or CMU dict form); 'cmudict' = the shipped CMU dict."),
    words_file: str = typer.Option(..., "--words", metavar="FILE", help="The words wanted: a word list, a text, or an ARPA LM (its unigrams)."),
    model: Path = typer.Option(..., "--model", metavar="DIR", help="g2p model folder (asrkit g2p train)."),
    output: str = typer.Option(..., "-o", "--output", metavar="NEW_LEX", help="Lexicon to write (atomically): LEX's lines for the words of FILE it has, g2p ones for the rest."),
    nbest: int = typer.Option(1, "--nbest", metavar="N", help="g2p pronunciations per new word."),
    beam: int = typer.Option(20, "--beam", help=_BEAM_HELP),
    all_words: bool = typer.Option(False, "--all", help="Write every word of LEX too, not only the words of FILE."),
    skip_unpronounceable: bool = typer.Option(
        False, "--skip-unpronounceable", help="Leave out (with a warning) words with no letter the model knows instead of stopping."),
) -> None:
    """Write a lexicon for the words of FILE: LEX's pronunciations where it has them,
    the g2p model's for the words it lacks."""
    from asrkit.data.lexicon import Lexicon, list_words
    from asrkit.errors import DataError
    from asrkit.io import atomic_write
    from asrkit.lm.g2p import G2PModel, read_word_list

    _check_search(nbest, beam)
    lex = Lexicon.default() if lexicon == "cmudict" else Lexicon.load(lexicon)
    words = read_word_list(words_file)
    m = G2PModel.load(model)
    missing = lex.missing(words)
    new: list[tuple[str, tuple[str, ...]]] = []
    bad: list[str] = []
    for w in missing:
        try:
            new.extend((w, p) for p, _ in m.pronounce(w, nbest=nbest, beam=beam))
        except DataError:
            if not skip_unpronounceable:
                raise
            bad.append(w)
    known = lex.words() if all_words else [w for w in words if w in lex]
    merged = Lexicon.combine([lex.subset(known), Lexicon.from_entries(new, name="g2p")], name=f"{lex.name}+g2p")
    with atomic_write(output) as f:
        for line in merged.lines():
            f.write(line + "\n")
    if bad:
        log.warn(f"left out {len(bad)} word(s) with no letter the model knows: {list_words(bad)}")
    log.info(f"wrote {output}: {len(known)} word(s) from {lex.name}, {len(missing) - len(bad)} from g2p")


def register(app: typer.Typer) -> None:
    """Add the ``g2p`` command group to the main app."""
    app.add_typer(g2p_app, name="g2p")
