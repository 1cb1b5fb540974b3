"""``asrkit tokenizer``: output units (phone, char, bpe) for CTC and frame models.

    asrkit tokenizer train --kind phone data/train/text exp/ctc/units
    asrkit tokenizer train --kind bpe --vocab-size 256 data/train/text exp/bpe/units
    asrkit tokenizer encode exp/ctc/units data/dev/text
    asrkit tokenizer encode exp/ctc/units data/dev/text | asrkit tokenizer decode exp/ctc/units -
    asrkit tokenizer lexicon data/lm_text.txt exp/lang/lexicon.txt --oov skip
"""
from __future__ import annotations

from typing import List, Optional

import typer

from asrkit import log

tokenizer_app = typer.Typer(
    help="Output units for CTC and frame models: train a phone/char/bpe tokenizer, encode and decode text, "
    "write pronunciation lexicons.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_TEXT_HELP = (
    "A Kaldi 'text' (utt-id word word ...) or plain lines of words; '-' reads stdin. "
    "See --text-format for how the two are told apart."
)
_FORMAT_HELP = (
    "auto: Kaldi 'text' when every line's first field is distinct and contains a digit, '-' or '_' "
    "(like utterance ids), else plain lines; or force kaldi / plain."
)


def _choice(value: str | None, option: str, choices: tuple[str, ...]) -> None:
    from asrkit.errors import UsageError, quote

    if value is not None and value not in choices:
        raise UsageError(f"{option} must be one of {', '.join(choices)}, got {quote(value)}")


@tokenizer_app.command("train")
def train(
    text: str = typer.Argument(..., help=_TEXT_HELP),
    out: str = typer.Argument(..., help="Folder to write (the exp dir's units folder): units.txt, tokenizer.json, ..."),
    kind: str = typer.Option(..., "--kind", help="phone | char | bpe."),
    vocab_size: Optional[int] = typer.Option(
        None, "--vocab-size", help="bpe only (required): number of units including <blank>."
    ),
    oov: Optional[str] = typer.Option(
        None, "--oov",
        help="phone only: 'error' (default) stops on words missing from the lexicon and lists them; "
        "'skip' drops their utterances.",
    ),
    bpe_type: Optional[str] = typer.Option(None, "--bpe-type", help="bpe only: sentencepiece 'unigram' (default) or 'bpe'."),
    text_format: str = typer.Option("auto", "--text-format", help=_FORMAT_HELP),
    lexicon: Optional[List[str]] = typer.Option(
        None, "--lexicon",
        help="phone only, repeatable: a lexicon file (Kaldi lexicon.txt or CMU dict form) consulted before the "
        "shipped CMU dict.",
    ),
    no_cmudict: bool = typer.Option(False, "--no-cmudict", help="phone only: use only the --lexicon files."),
) -> None:
    """Make the units of a model from training TEXT and write them to folder OUT.

    phone: <blank>, sil and the 39 ARPAbet phones (no stress); words spelled
    with the shipped CMU Pronouncing Dictionary (plus --lexicon files); also
    writes OUT/lexicon.txt and OUT/text.phones. char: <blank>, <unk>, '|'
    (word separator), the apostrophe, the letters and any other character of
    TEXT. bpe: <blank> and a sentencepiece model trained here.
    """
    from asrkit.data.tokenizer import BPE_TYPES, KINDS, train_tokenizer
    from asrkit.data.transcripts import TEXT_FORMATS
    from asrkit.errors import UsageError

    _choice(kind, "--kind", KINDS)
    _choice(oov, "--oov", ("error", "skip"))
    _choice(bpe_type, "--bpe-type", BPE_TYPES)
    _choice(text_format, "--text-format", TEXT_FORMATS)
    if kind != "phone" and oov is not None:
        raise UsageError("--oov applies to --kind phone only")
    if kind != "bpe" and bpe_type is not None:
        raise UsageError("--bpe-type applies to --kind bpe only")
    result = train_tokenizer(
        kind, text, out,
        vocab_size=vocab_size, oov=oov or "error", bpe_type=bpe_type or "unigram", text_format=text_format,
        lexicons=lexicon or (), cmudict=not no_cmudict,
    )
    tok = result.tokenizer
    where = "stdin" if text == "-" else text
    log.info(
        f"read {where} as {result.text_format} text: {result.utterances} lines, {result.words} words"
    )
    if result.skipped:
        log.warn(
            f"skipped {len(result.skipped)} of {result.utterances} utterances with {len(result.oov_words)} word(s) "
            f"not in the lexicon: {_some(result.oov_words)}"
        )
    log.info(f"wrote {out}: {tok.kind} units, vocab size {tok.vocab_size} (<blank> = 0)")


def _some(words: list[str], limit: int = 20) -> str:
    from asrkit.data.lexicon import list_words

    return list_words(words, limit)


@tokenizer_app.command("encode")
def encode(
    units: str = typer.Argument(..., help="A tokenizer folder written by 'asrkit tokenizer train'."),
    text: str = typer.Argument(..., help=_TEXT_HELP),
    symbols: bool = typer.Option(False, "--symbols", help="Print unit symbols instead of ids."),
    oov: str = typer.Option("error", "--oov", help="phone units: 'error' or 'skip' (drop) lines with unknown words."),
    text_format: str = typer.Option("auto", "--text-format", help=_FORMAT_HELP),
) -> None:
    """Print the unit ids (or symbols) of each line of TEXT, keeping utt-ids."""
    from asrkit.data.lexicon import UnknownWordError
    from asrkit.data.tokenizer import Tokenizer
    from asrkit.data.transcripts import TEXT_FORMATS, read_training_text

    _choice(oov, "--oov", ("error", "skip"))
    _choice(text_format, "--text-format", TEXT_FORMATS)
    tok = Tokenizer.load(units)
    transcripts, _ = read_training_text(text, text_format)
    skipped = 0
    for k, t in enumerate(transcripts, start=1):
        try:
            ids = tok.encode(t.words)
        except UnknownWordError as e:
            if oov == "error":
                where = t.utt or f"line {k}"
                raise UnknownWordError(f"{where}: {e}; use --oov skip to drop such lines", e.words) from None
            skipped += 1
            continue
        body = " ".join(tok.units[i] for i in ids) if symbols else " ".join(map(str, ids))
        typer.echo(f"{t.utt} {body}".rstrip() if t.utt is not None else body)
    if skipped:
        log.warn(f"skipped {skipped} line(s) with words not in the lexicon")


@tokenizer_app.command("decode")
def decode(
    units: str = typer.Argument(..., help="A tokenizer folder written by 'asrkit tokenizer train'."),
    ids: str = typer.Argument(..., help="Lines of unit ids, 'utt-id id id ...' or 'id id ...'; '-' reads stdin."),
) -> None:
    """Print the words (char, bpe) or phones (phone) of each line of ids."""
    from asrkit.data.tokenizer import Tokenizer
    from asrkit.errors import DataError, InputError, quote
    from asrkit.io import display_name, iter_lines

    tok = Tokenizer.load(units)
    name = display_name(ids)
    for lineno, line in iter_lines(ids):
        fields = line.split()
        utt = None
        if not fields[0].isdigit():
            utt, fields = fields[0], fields[1:]
        bad = next((f for f in fields if not f.isdigit()), None)
        if bad is not None:
            raise InputError(f"{name}:{lineno}: {quote(bad)} is not a unit id (expected non-negative integers)")
        try:
            tokens = tok.decode(int(f) for f in fields)
        except DataError as e:  # an id out of range: add the place
            raise DataError(f"{name}:{lineno}: {e}") from None
        body = " ".join(tokens)
        typer.echo(f"{utt} {body}".rstrip() if utt is not None else body)


@tokenizer_app.command("lexicon")
def lexicon_cmd(
    text: str = typer.Argument(..., help=_TEXT_HELP + " Every word of it gets its spellings."),
    out: str = typer.Argument(..., help="Kaldi lexicon.txt to write ('word p1 p2 ...', one line per pronunciation); '-' = stdout."),
    oov: str = typer.Option("error", "--oov", help="'error' stops on words missing from the lexicon; 'skip' leaves them out."),
    lexicon: Optional[List[str]] = typer.Option(None, "--lexicon", help="Repeatable: lexicon files consulted before the CMU dict."),
    no_cmudict: bool = typer.Option(False, "--no-cmudict", help="Use only the --lexicon files."),
    text_format: str = typer.Option("auto", "--text-format", help=_FORMAT_HELP),
) -> None:
    """Write the pronunciations (ARPAbet 39, no stress) of the words of TEXT."""
    from asrkit.data.lexicon import Lexicon, UnknownWordError, list_words
    from asrkit.data.transcripts import TEXT_FORMATS, read_training_text
    from asrkit.errors import UsageError

    _choice(oov, "--oov", ("error", "skip"))
    _choice(text_format, "--text-format", TEXT_FORMATS)
    if no_cmudict and not lexicon:
        raise UsageError("--no-cmudict needs at least one --lexicon FILE")
    chain = [Lexicon.load(p) for p in lexicon or ()] + ([] if no_cmudict else [Lexicon.default()])
    lex = chain[0] if len(chain) == 1 else Lexicon.combine(chain)
    transcripts, _ = read_training_text(text, text_format)
    words = list(dict.fromkeys(w for t in transcripts for w in t.words))
    missing = lex.missing(words)
    if missing and oov == "error":
        raise UnknownWordError(
            f"{len(missing)} of {len(words)} word(s) not in the lexicon ({lex.name}): {list_words(missing)}; "
            f"use --oov skip or add them with --lexicon FILE",
            missing,
        )
    miss = set(missing)
    keep = [w for w in words if w not in miss]
    if out == "-":
        for line in lex.lines(keep):
            typer.echo(line)
        n = None
    else:
        n = lex.write(out, keep)
    if missing:
        log.warn(f"left out {len(missing)} word(s) not in the lexicon: {list_words(missing)}")
    if n is not None:
        log.info(f"wrote {out}: {len(keep)} words, {n} pronunciations")


def register(app: typer.Typer) -> None:
    """Add the ``tokenizer`` command group to the main app."""
    app.add_typer(tokenizer_app, name="tokenizer")
