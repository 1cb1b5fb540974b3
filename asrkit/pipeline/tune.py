"""LM weight / word bonus tuning over a dev set (``asrkit tune``), like
Kaldi's scoring that sweeps LMWT and the word insertion penalty.

The model's log-probabilities are computed once (or read from emissions
saved by ``asrkit decode --save-emissions``); every point of the grid
``lm_weights x word_bonuses`` reruns only the beam search and scores its
hypotheses against the reference::

    from asrkit.pipeline import tune
    units = tune.exp_units("exp/ctc")
    outputs, info = tune.load_outputs("exp/ctc", "exp/ctc/emis_dev", units)
    refs = tune.references("data/dev/text", [o.utt for o in outputs])
    found = tune.search_grid(units, outputs, refs, "exp/lm3.arpa",
                             lm_weights=tune.parse_grid("0:2:0.25", "--lm-weights"),
                             word_bonuses=tune.parse_grid("-2:4:1", "--word-bonuses"), jobs=4)
    found.best.lm_weight, found.best.word_bonus, found.best.wer
    tune.write_tuning("exp/ctc", found, lm="exp/lm3.arpa", ...)        # EXP/lm_tuning.yaml
    tune.read_tuning("exp/ctc")                                         # -> dict, None when absent

The best point has the fewest word errors (integer counts, so ties are
exact); among equals the smallest ``|word_bonus|``, then the smallest
``lm_weight`` wins: the setting that moves the search least away from the
plain acoustic + LM score, and the same answer whatever the grid order or
``jobs``.

Grid points can be spread over worker processes (``jobs``,
:mod:`asrkit.workers`: each worker gets its own copy of the
log-probabilities and builds its own :class:`~asrkit.decode.beam.BeamDecoder`).
The result does not depend on ``jobs``.

Attention models (task las / transformer) are tuned over LM weight x CTC
weight x length bonus on a feature store whose encoder outputs are computed
once (:func:`asrkit.decode.attention.encode_store`); the LM is a word n-gram
file or a neural LM exp dir on the model's units, as in ``asrkit decode``::

    batches = encode_store(loaded, FeatureStore("feats/dev"))
    points = tune.attention_search_grid(loaded, batches, refs, lm="exp/lm3.arpa", lm_weights=[0, 0.5],
                                        ctc_weights=[0.3], length_bonuses=[0, 1], beam=10)
    tune.write_attention_tuning("exp/tf", points, lm=..., ...)        # EXP/lm_tuning.yaml, search: attention
    tune.attention_tuned_weights("exp/tf", "exp/lm3.arpa")            # -> {lm_weight, ctc_weight, length_bonus}

An n-best file (``asrkit decode --nbest N``) is tuned for ``asrkit rescore`` over LM weight x length
bonus: the LM scores every hypothesis once, each grid point only re-ranks the lists::

    from asrkit.pipeline.rescore import read_nbest, score_candidates
    utts = list(read_nbest("exp/tf/nbest_dev.jsonl"))
    score_candidates(utts, open_sentence_lm("exp/lm_lstm"))
    points = tune.rescore_search_grid(utts, refs, lm_weights=[0, 0.5, 1], length_bonuses=[0, 1])
    tune.best_rescore_point(points)                                   # EXP/rescore_tuning.yaml: write_rescore_tuning
"""
from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from asrkit.data.units import UnitMap
from asrkit.decode.backends import DEFAULT_LM_BACKEND, resolve_backend
from asrkit.decode.beam import BeamDecoder
from asrkit.decode.emissions import ModelOutput, check_emissions, is_emissions_store, open_saved_emissions
from asrkit.workers import check_jobs, worker_pool
from asrkit.errors import DataError, InputError, UsageError, quote
from asrkit.score import Counts

__all__ = [
    "ATTENTION_GRIDS", "ATTENTION_SEARCH", "AttentionPoint", "attention_grid_table", "attention_search_grid",
    "attention_tuned_weights", "best_attention_point", "read_attention_tuning", "write_attention_tuning",
    "DEFAULT_GRIDS", "MAX_GRID_VALUES", "TUNING_FILE", "GridPoint", "GridSearch", "best_point", "data_utts",
    "default_grids", "exp_units", "grid_table", "load_outputs", "parse_grid", "read_tuning", "references",
    "search_grid", "tuned_weights", "write_tuning",
    "RESCORE_GRIDS", "RESCORE_TUNING_FILE", "RescorePoint", "best_rescore_point", "rescore_grid_table",
    "rescore_search_grid", "write_rescore_tuning",
]

#: Written into the exp dir; ``asrkit decode`` reads it for its default weights.
TUNING_FILE = "lm_tuning.yaml"
#: Default grids (``--lm-weights``, ``--word-bonuses``) per backend. Both LM
#: backends weigh the natural-log LM probability (flashlight gets
#: ``lm_weight * ln 10`` for kenlm's log10 scores), so the LM weights are
#: the same: 0..2 around the default 0.5 (pyctcdecode's alpha; with much more
#: the LM drowns the acoustics). The word bonus is centred on each backend's
#: default: pyctcdecode 1.5 (its beta; an open vocabulary needs a push
#: towards word ends), flashlight 0 (its lexicon already keeps non-words out).
DEFAULT_GRIDS: dict[str, tuple[str, str]] = {
    "pyctcdecode": ("0:2:0.25", "-2:4:1"),
    "flashlight": ("0:2:0.25", "-3:3:1"),
}
#: A spec giving more values than this is refused (a typo like 0:100:0.001).
MAX_GRID_VALUES = 1000
_MAX_LISTED = 5


# -- the grid ----------------------------------------------------------------------------------------


def _number(text: str, option: str, spec: str) -> Decimal:
    t = text.strip()
    try:
        value = Decimal(t)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or not math.isfinite(float(value)):
        raise UsageError(f"{option} {spec}: {quote(t)} is not a finite number; give a comma list (0.3,0.5,1) "
                         f"or START:STOP:STEP (0:2:0.25)")
    return value


def parse_grid(spec: str, option: str, *, minimum: Optional[float] = None) -> list[float]:
    """The values of a grid spec, ascending, without duplicates.

    ``spec`` is a comma list (``0.3,0.5,1``) or a range ``START:STOP:STEP``
    with an inclusive ``STOP`` (``0:2:0.25`` -> 0, 0.25, ..., 2; a ``STOP``
    the steps do not reach exactly is not passed: ``0:1:0.3`` -> 0, 0.3, 0.6,
    0.9). Decimal arithmetic, so float steps give exactly the values written.
    Bad specs, values below ``minimum`` and more than
    :data:`MAX_GRID_VALUES` values raise :class:`UsageError` naming ``option``.
    """
    text = spec.strip()
    if not text:
        raise UsageError(f"{option}: empty; give a comma list (0.3,0.5,1) or START:STOP:STEP (0:2:0.25)")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise UsageError(f"{option} {spec}: a range is START:STOP:STEP (three numbers), e.g. 0:2:0.25")
        start, stop, step = (_number(p, option, spec) for p in parts)
        if step <= 0:
            raise UsageError(f"{option} {spec}: STEP must be > 0")
        if stop < start:
            raise UsageError(f"{option} {spec}: STOP is below START")
        n = int((stop - start) / step) + 1
        if n > MAX_GRID_VALUES:
            raise UsageError(f"{option} {spec}: {n} values; at most {MAX_GRID_VALUES} (take a larger STEP)")
        exact = [start + k * step for k in range(n)]
    else:
        exact = [_number(p, option, spec) for p in text.split(",")]
        if len(exact) > MAX_GRID_VALUES:
            raise UsageError(f"{option}: {len(exact)} values; at most {MAX_GRID_VALUES}")
    values = sorted({float(v) for v in exact})
    if minimum is not None and values[0] < minimum:
        raise UsageError(f"{option} {spec}: values must be >= {minimum:g}, got {values[0]:g}")
    return values


def default_grids(backend: Optional[str] = None) -> tuple[str, str]:
    """The default ``(--lm-weights, --word-bonuses)`` specs of an LM
    backend (None: the default one)."""
    return DEFAULT_GRIDS.get(backend or DEFAULT_LM_BACKEND, DEFAULT_GRIDS["pyctcdecode"])


# -- inputs ------------------------------------------------------------------------------------------


def exp_units(exp: str | os.PathLike) -> UnitMap:
    """The units of an exp dir, without loading its model."""
    from asrkit.config import load_saved_config
    from asrkit.data.units import load_units

    path = Path(exp)
    if not path.is_dir():
        raise InputError(f"{path}: no such exp dir")
    return load_units(path, load_saved_config(path))


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_data_dir(data: Path) -> None:
    if not data.exists():
        raise InputError(f"{data}: no such folder (DATA is saved emissions or a feature store)")
    if not data.is_dir():
        raise InputError(f"{data}: is not a folder (DATA is saved emissions or a feature store)")


def data_utts(data: str | os.PathLike) -> list[str]:
    """The utt-ids of DATA (saved emissions or a feature store), sorted,
    without running anything: to check the reference before the model runs."""
    from asrkit.data import FeatureStore

    _check_data_dir(Path(data))
    return FeatureStore(data).keys()


def load_outputs(exp: str | os.PathLike, data: str | os.PathLike, units: UnitMap, *,
                 checkpoint: Optional[str] = None, device: str = "auto", batch_size: int = 16,
                 on_output: Optional[Callable[[], None]] = None,
                 chunk_seconds: Optional[float] = None) -> tuple[list[ModelOutput], dict[str, Any]]:
    """Every utterance's log-probabilities, in memory, in utt-id order.

    ``data`` is a folder of saved emissions (has ``emissions.json``: read,
    checked to come from ``exp``) or a feature store (the model of ``exp``
    runs over it once, long utterances in pieces as ``asrkit decode --chunk-seconds`` (None: its
    default); nothing is written there). Returns the outputs and
    ``{"source": "emissions"|"features", "checkpoint": ...}``.
    """
    from asrkit.data import FeatureStore

    exp, data = Path(exp), Path(data)
    _check_data_dir(data)
    outputs: list[ModelOutput] = []
    if is_emissions_store(data):
        saved = open_saved_emissions(exp, data, units)
        outputs = list(saved.outputs(on_output=on_output))
        return outputs, {"source": "emissions", "checkpoint": saved.meta.get("checkpoint")}

    from asrkit.decode.emissions import iter_outputs
    from asrkit.decode.exp import load_exp
    from asrkit.decode.longform import chunk_frames

    store = FeatureStore(data)  # InputError: not a feature store
    loaded = load_exp(exp, checkpoint=checkpoint or "best", device=device, task="ctc")
    if loaded.units.num_classes != units.num_classes:  # pragma: no cover - load_exp checks the same
        raise DataError(f"{exp}: the model has {loaded.units.num_classes} classes, the units {units.num_classes}")
    for out in iter_outputs(loaded.model, store, cmvn=loaded.cmvn, norm_vars=loaded.norm_vars,
                            batch_size=batch_size, device=loaded.device, input_dim=loaded.input_dim,
                            max_frames=chunk_frames(chunk_seconds, store)):
        check_emissions(out)
        outputs.append(out)
        if on_output is not None:
            on_output()
    return outputs, {"source": "features", "checkpoint": str(loaded.checkpoint)}


def references(ref: str | os.PathLike, utts: Sequence[str]) -> dict[str, list[str]]:
    """The reference words of ``utts`` (in that order) from a Kaldi text (or
    trn) file. Utterances without a reference raise :class:`DataError`
    naming how many and the first few; references of other utterances are
    left out."""
    from asrkit.data.transcripts import read_transcripts

    tr = read_transcripts(ref)
    missing = [u for u in utts if u not in tr.utts]
    if missing:
        shown = ", ".join(missing[:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
        raise DataError(f"{tr.name}: no reference for {len(missing)} of the {len(utts)} utterances in DATA "
                        f"({shown}); give the text of the same data set")
    return {u: tr.utts[u] for u in utts}


# -- the search --------------------------------------------------------------------------------------


@dataclass
class GridSearch:
    """What :func:`search_grid` found: every point in grid order (lm weight
    outer, word bonus inner) and the backend that decoded them."""

    points: list[GridPoint]
    backend: Optional[str]

    @property
    def best(self) -> GridPoint:
        return best_point(self.points)


class _Scored:
    """A grid point's %WER, errors and reference words, from its ``counts``."""

    counts: Counts

    @property
    def wer(self) -> Optional[float]:
        return self.counts.rate

    @property
    def errors(self) -> int:
        return self.counts.errors

    @property
    def words(self) -> int:
        return self.counts.ref


@dataclass(frozen=True)
class GridPoint(_Scored):
    """One grid point's word counts (``counts.rate`` is its %WER)."""

    lm_weight: float
    word_bonus: float
    counts: Counts


class _Searcher:
    """Decodes and scores grid points; keeps one decoder (re-weighted with
    ``set_weights`` when the decoder has it, else rebuilt per point)."""

    def __init__(self, units: UnitMap, outputs: Sequence[ModelOutput], refs: dict[str, list[str]],
                 settings: dict[str, Any], grid: Sequence[tuple[float, float]]):
        self.units, self.outputs, self.refs = units, outputs, refs
        self.settings = settings  # BeamDecoder's keyword arguments but the weights
        self.grid = list(grid)
        self._dec: Optional[BeamDecoder] = None
        self._weights: Optional[tuple[float, float]] = None
        #: the backend the decoder resolved (``BeamDecoder.backend``)
        self.backend_used: Optional[str] = settings.get("backend")

    def decoder(self, lm_weight: float, word_bonus: float) -> BeamDecoder:
        if self._dec is not None and self._weights == (lm_weight, word_bonus):
            return self._dec
        if self._dec is not None and hasattr(self._dec, "set_weights"):
            self._dec.set_weights(lm_weight, word_bonus)
        else:
            self.close()
            self._dec = BeamDecoder(self.units, lm_weight=lm_weight, word_bonus=word_bonus, **self.settings)
            self.backend_used = self._dec.backend
        self._weights = (lm_weight, word_bonus)
        return self._dec

    def point(self, i: int, on_utt: Optional[Callable[[], None]] = None) -> GridPoint:
        from asrkit.score import score

        w, b = self.grid[i]
        dec = self.decoder(w, b)
        hyps: dict[str, list[str]] = {}
        for out in self.outputs:
            hyps[out.utt] = dec.decode(out).tokens
            if on_utt is not None:
                on_utt()
        result = score(self.refs, hyps, mode="strict", ref_name="REF", hyp_name=f"grid point {w:g}/{b:g}")
        return GridPoint(w, b, result.words)

    def close(self) -> None:
        if self._dec is not None:
            self._dec.close()
        self._dec = None
        self._weights = None


_WORKER: Optional[_Searcher] = None  # a grid worker's searcher


def _init_worker(searcher: _Searcher) -> None:
    global _WORKER
    _WORKER = searcher


def _work(i: int) -> tuple[int, GridPoint]:
    assert _WORKER is not None
    return i, _WORKER.point(i)


def search_grid(units: UnitMap, outputs: Sequence[ModelOutput], refs: dict[str, list[str]],
                lm: str | os.PathLike, *, lm_weights: Sequence[float], word_bonuses: Sequence[float],
                beam: int = 20, backend: Optional[str] = None, lexicon: Optional[str | os.PathLike] = None,
                extra_lexicon: Optional[str | os.PathLike] = None, jobs: int = 1,
                on_progress: Optional[Callable[[int], None]] = None,
                blank_skip: Optional[float] = None, pruning: Optional[dict[str, Any]] = None) -> GridSearch:
    """Decode ``outputs`` at every ``(lm_weight, word_bonus)`` and score the
    hypotheses against ``refs`` (utt-id -> words, one per output).

    Returns a :class:`GridSearch`; its points are the same for any ``jobs``.
    ``on_progress(n)`` is called as utterances are decoded (per utterance with ``jobs=1``, per grid point otherwise).
    ``lexicon`` / ``extra_lexicon`` / ``blank_skip`` (None: the default) / ``pruning``
    (``beam_threshold``, ``beam_size_token``): as in :class:`BeamDecoder`.
    Errors of :class:`BeamDecoder` (a missing LM, a phone model without a
    lexicon) pass through; the first decoder is built before any worker
    starts, so they come at once.
    """
    check_jobs(jobs)
    if not lm_weights or not word_bonuses:
        raise UsageError("the grid is empty")
    backend = resolve_backend(units.kind, True, backend)  # UsageError: unknown, plain, pyctcdecode + phones
    missing = [o.utt for o in outputs if o.utt not in refs]
    if missing:
        raise DataError(f"no reference for {len(missing)} utterance(s): {', '.join(missing[:_MAX_LISTED])}")
    grid = [(float(w), float(b)) for w in lm_weights for b in word_bonuses]
    settings = {"beam": beam, "lm": lm, "backend": backend, "lexicon": lexicon, "extra_lexicon": extra_lexicon,
                "blank_skip": blank_skip, **(pruning or {})}
    searcher = _Searcher(units, outputs, refs, settings, grid)
    jobs = min(jobs, len(grid))
    points: list[Optional[GridPoint]] = [None] * len(grid)
    try:
        searcher.decoder(*grid[0])  # LM / lexicon / unit errors now, in this process
        if jobs == 1:
            step = (lambda: on_progress(1)) if on_progress is not None else None
            for i in range(len(grid)):
                points[i] = searcher.point(i, step)
            return GridSearch(points, searcher.backend_used)  # type: ignore[arg-type]
        searcher.close()  # the workers build their own
        with worker_pool(jobs, _init_worker, (searcher,)) as pool:
            for i, p in pool.imap_unordered(_work, range(len(grid))):
                points[i] = p
                if on_progress is not None:
                    on_progress(len(outputs))
        return GridSearch(points, searcher.backend_used)  # type: ignore[arg-type]
    finally:
        searcher.close()


def best_point(points: Sequence[GridPoint]) -> GridPoint:
    """Fewest word errors; ties: smallest ``|word_bonus|``, then smallest
    ``lm_weight`` (then the negative bonus of a +-b pair): independent of the
    order of ``points``."""
    if not points:
        raise ValueError("no grid points")
    return min(points, key=lambda p: (p.errors, abs(p.word_bonus), p.lm_weight, p.word_bonus))


def _table(title: str, names: Sequence[str], points, best, settings):
    """A grid as a :class:`asrkit.score.report.Table`: the columns ``names`` (each point's
    ``settings(p)``), then %WER, errors/words, sub, del, ins, and ``*`` on the best row."""
    from asrkit.score.report import Table

    rows = []
    for p in points:
        c = p.counts
        rows.append([*(f"{v:g}" for v in settings(p)), "n/a" if p.wer is None else f"{p.wer:.2f}",
                     f"{c.errors}/{c.ref}", str(c.sub), str(c.dele), str(c.ins), "*" if p is best else ""])
    headers = [*names, "%WER", "ERR/WORDS", "SUB", "DEL", "INS", "BEST"]
    return Table(title, headers, rows, [True] * (len(headers) - 1) + [False])


def grid_table(points: Sequence[GridPoint], best: GridPoint, title: str = "LM weight / word bonus grid"):
    """The grid as a :class:`asrkit.score.report.Table` (best row marked ``*``)."""
    return _table(title, ["LM_WEIGHT", "WORD_BONUS"], points, best, lambda p: (p.lm_weight, p.word_bonus))


# -- the result file ---------------------------------------------------------------------------------


def _abs(path: Optional[str | os.PathLike]) -> Optional[str]:
    return None if path is None else str(Path(path).resolve())


def _write_yaml(path: Path, doc: dict, header: str) -> Path:
    """``header`` (comment lines) and ``doc`` as YAML into ``path``, atomically; InputError if it cannot."""
    import yaml

    from asrkit.io import atomic_write

    try:
        with atomic_write(path) as f:
            f.write(header)
            yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=None)
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}") from None
    return path


def write_tuning(exp: str | os.PathLike, found: GridSearch, *, lm: str | os.PathLike, ref: str | os.PathLike,
                 data: str | os.PathLike, beam: int, lexicon: Optional[str | os.PathLike] = None,
                 extra_lexicon: Optional[str | os.PathLike] = None,
                 checkpoint: Optional[str] = None, utterances: Optional[int] = None) -> Path:
    """Write the best point of ``found`` and how it was found to
    ``EXP/lm_tuning.yaml`` (atomically); returns the path."""
    points, best = found.points, found.best
    lm_weights = sorted({p.lm_weight for p in points})
    word_bonuses = sorted({p.word_bonus for p in points})
    doc = {
        "lm_weight": best.lm_weight,
        "word_bonus": best.word_bonus,
        "wer": None if best.wer is None else round(best.wer, 4),
        "errors": best.errors,
        "words": best.words,
        "beam": int(beam),
        "backend": found.backend,
        "lm": _abs(lm),
        "lexicon": _abs(lexicon),
        "extra_lexicon": _abs(extra_lexicon),
        "ref": _abs(ref),
        "data": _abs(data),
        "checkpoint": checkpoint,
        "utterances": utterances,
        "grid_size": len(points),
        "lm_weights": lm_weights,
        "word_bonuses": word_bonuses,
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }
    return _write_yaml(Path(exp) / TUNING_FILE, doc,
                       "# written by 'asrkit tune': the LM weight and word bonus with the lowest WER on 'ref'.\n"
                       "# 'asrkit decode' uses them when --lm-weight / --word-bonus are not given.\n")


def _weight(doc: dict, key: str, path: Path, minimum: Optional[float] = None) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or (minimum is not None and v < minimum):
        want = "a finite number" + (f" >= {minimum:g}" if minimum is not None else "")
        raise InputError(f"{path}: {quote(key)} must be {want}, got {quote(v)}; rerun 'asrkit tune' or delete the file")
    return float(v)


def _load_tuning_yaml(path: Path) -> Any:
    """The YAML document of an existing tuning file; :class:`InputError` when unreadable."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML; rerun 'asrkit tune' or delete the file") from None
    return doc


def read_tuning(exp: str | os.PathLike) -> Optional[dict[str, Any]]:
    """The contents of ``EXP/lm_tuning.yaml`` (``lm_weight`` and
    ``word_bonus`` as floats), or None when there is none. An unreadable or
    malformed file raises :class:`InputError`."""
    path = Path(exp) / TUNING_FILE
    if not path.exists():
        return None
    doc = _load_tuning_yaml(path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a mapping with lm_weight and word_bonus; rerun 'asrkit tune' "
                         f"or delete the file")
    doc = dict(doc)
    doc["lm_weight"] = _weight(doc, "lm_weight", path, minimum=0.0)
    doc["word_bonus"] = _weight(doc, "word_bonus", path)
    return doc


def tuned_weights(exp: str | os.PathLike, lm: str | os.PathLike,
                  backend: Optional[str] = None) -> Optional[tuple[float, float]]:
    """``(lm_weight, word_bonus)`` from ``EXP/lm_tuning.yaml`` when it was
    tuned for this LM file (and this backend, when both are known); None
    (with a warning on stderr when a file exists but does not fit) otherwise.
    For ``asrkit decode``'s defaults."""
    from asrkit import log

    doc = read_tuning(exp)
    if doc is None:
        return None
    path = Path(exp) / TUNING_FILE
    tuned_lm = doc.get("lm")
    if tuned_lm is not None and not (_same_path(Path(tuned_lm), Path(lm)) or _abs(lm) == str(tuned_lm)):
        log.warn(f"{path} was tuned for LM {tuned_lm}, not {lm}; using the default weights "
                 f"(rerun 'asrkit tune' with this LM)")
        return None
    tuned_backend = doc.get("backend")
    if backend is not None and tuned_backend is not None and backend != tuned_backend:
        log.warn(f"{path} was tuned with backend {tuned_backend}, not {backend}; using the default weights")
        return None
    return doc["lm_weight"], doc["word_bonus"]


# -- attention models --------------------------------------------------------------------------------
#
# An attention model (task las | transformer) is tuned on a feature store: the encoder runs once over
# it (asrkit.decode.attention.encode_store, kept in memory) and the beam search reruns over the cached
# encoder outputs at every point of --lm-weights x --ctc-weights x --length-bonuses. The best point
# goes to EXP/lm_tuning.yaml with ``search: attention``; ``asrkit decode`` reads it with
# attention_tuned_weights for the same LM (or for no LM when tuned without one).

#: Default grids of an attention model: LM weights (with --lm), CTC weights (a model with a CTC head;
#: 0 for LAS), length bonuses.
ATTENTION_GRIDS = {"lm_weights": "0:1:0.25", "ctc_weights": "0.1:0.5:0.2", "length_bonuses": "0:1:0.5"}
#: ``search`` in EXP/lm_tuning.yaml of an attention model.
ATTENTION_SEARCH = "attention"


@dataclass(frozen=True)
class AttentionPoint(_Scored):
    """One attention grid point's word counts (``counts.rate`` is its %WER)."""

    lm_weight: float
    ctc_weight: float
    length_bonus: float
    counts: Counts


def best_attention_point(points: Sequence[AttentionPoint]) -> AttentionPoint:
    """Fewest word errors; ties: smallest ``|length_bonus|``, then smallest ``lm_weight``, then
    smallest ``ctc_weight``: independent of the order of ``points``."""
    if not points:
        raise ValueError("no grid points")
    return min(points, key=lambda p: (p.errors, abs(p.length_bonus), p.lm_weight, p.ctc_weight, p.length_bonus))


def attention_search_grid(exp, batches: Sequence[Any], refs: dict[str, list[str]], *,
                          lm: Optional[str | os.PathLike], lm_weights: Sequence[float], ctc_weights: Sequence[float],
                          length_bonuses: Sequence[float], beam: int, length_norm: bool = False,
                          max_len_ratio: Optional[float] = None,
                          on_progress: Optional[Callable[[int], None]] = None) -> list[AttentionPoint]:
    """Search the cached encoder outputs ``batches`` (:func:`asrkit.decode.attention.encode_store`)
    of a loaded attention exp dir at every ``(lm_weight, ctc_weight, length_bonus)`` (grid order:
    LM weight outer, length bonus inner) and score the best hypotheses against ``refs``. ``lm``:
    a word n-gram file or a neural LM exp dir on the model's units
    (:func:`asrkit.decode.fusion.open_fusion_lm`), or None. ``on_progress(n)`` is called with each
    batch's utterance count."""
    from asrkit.decode.attention import DEFAULT_MAX_LEN_RATIO, AttentionSearch, joined_tokens
    from asrkit.decode.fusion import open_fusion_lm
    from asrkit.score import score

    if not lm_weights or not ctc_weights or not length_bonuses:
        raise UsageError("the grid is empty")
    names = list(dict.fromkeys(n for b in batches for n in b.names))
    missing = [u for u in names if u not in refs]
    if missing:
        raise DataError(f"no reference for {len(missing)} utterance(s): {', '.join(missing[:_MAX_LISTED])}")
    fusion_lm = open_fusion_lm(lm, exp.units, device=exp.device) if lm is not None else None
    ratio = DEFAULT_MAX_LEN_RATIO if max_len_ratio is None else max_len_ratio
    points: list[AttentionPoint] = []
    try:
        for w in lm_weights:
            for c in ctc_weights:
                for b in length_bonuses:
                    search = AttentionSearch(beam=beam, ctc_weight=float(c), lm=fusion_lm, lm_weight=float(w),
                                             length_bonus=float(b), length_norm=length_norm, max_len_ratio=ratio)
                    search.check_model(exp.model)
                    results = []
                    for batch in batches:
                        results.append([exp.units.tokens(found[0].ids) for found in search.run(exp.model, batch.enc)])
                        if on_progress is not None:  # utterances: a long one counts at its first piece
                            on_progress(sum(1 for k in batch.piece if k == 0))
                    hyps = joined_tokens(batches, results)
                    result = score({u: refs[u] for u in names}, hyps, mode="strict", ref_name="REF",
                                   hyp_name=f"grid point {w:g}/{c:g}/{b:g}")
                    points.append(AttentionPoint(float(w), float(c), float(b), result.words))
    finally:
        if fusion_lm is not None:
            fusion_lm.close()
    return points


def attention_grid_table(points: Sequence[AttentionPoint], best: AttentionPoint,
                         title: str = "LM weight / CTC weight / length bonus grid"):
    """The attention grid as a :class:`asrkit.score.report.Table` (best row marked ``*``)."""
    return _table(title, ["LM_WEIGHT", "CTC_WEIGHT", "LENGTH_BONUS"], points, best,
                  lambda p: (p.lm_weight, p.ctc_weight, p.length_bonus))


def write_attention_tuning(exp: str | os.PathLike, points: Sequence[AttentionPoint], *,
                           lm: Optional[str | os.PathLike], ref: str | os.PathLike, data: str | os.PathLike,
                           beam: int, length_norm: bool, max_len_ratio: float, checkpoint: Optional[str] = None,
                           utterances: Optional[int] = None) -> Path:
    """Write the best of ``points`` and how it was found to ``EXP/lm_tuning.yaml`` (atomically,
    ``search: attention``); returns the path."""
    best = best_attention_point(points)
    doc = {
        "search": ATTENTION_SEARCH,
        "lm_weight": best.lm_weight,
        "ctc_weight": best.ctc_weight,
        "length_bonus": best.length_bonus,
        "wer": None if best.wer is None else round(best.wer, 4),
        "errors": best.errors,
        "words": best.words,
        "beam": int(beam),
        "length_norm": bool(length_norm),
        "max_len_ratio": float(max_len_ratio),
        "lm": _abs(lm),
        "ref": _abs(ref),
        "data": _abs(data),
        "checkpoint": checkpoint,
        "utterances": utterances,
        "grid_size": len(points),
        "lm_weights": sorted({p.lm_weight for p in points}),
        "ctc_weights": sorted({p.ctc_weight for p in points}),
        "length_bonuses": sorted({p.length_bonus for p in points}),
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }
    return _write_yaml(Path(exp) / TUNING_FILE, doc,
                       "# written by 'asrkit tune': the attention search weights with the lowest WER on 'ref'.\n"
                       "# 'asrkit decode' uses them (beam search, same LM) when --lm-weight / --ctc-weight / "
                       "--length-bonus are not given.\n")


def read_attention_tuning(exp: str | os.PathLike) -> Optional[dict[str, Any]]:
    """``EXP/lm_tuning.yaml`` of an attention model (``lm_weight``, ``ctc_weight``, ``length_bonus``
    as floats), None when there is none; :class:`InputError` when unreadable, malformed or written
    for a CTC model."""
    path = Path(exp) / TUNING_FILE
    if not path.exists():
        return None
    doc = _load_tuning_yaml(path)
    if not isinstance(doc, dict) or doc.get("search") != ATTENTION_SEARCH:
        raise InputError(f"{path}: not the tuning of an attention model (no 'search: {ATTENTION_SEARCH}'); "
                         f"rerun 'asrkit tune' or delete the file")
    doc = dict(doc)
    doc["lm_weight"] = _weight(doc, "lm_weight", path, minimum=0.0)
    doc["ctc_weight"] = _weight(doc, "ctc_weight", path, minimum=0.0)
    if doc["ctc_weight"] > 1.0:
        raise InputError(f"{path}: 'ctc_weight' must be between 0 and 1, got {doc['ctc_weight']:g}; rerun "
                         f"'asrkit tune' or delete the file")
    doc["length_bonus"] = _weight(doc, "length_bonus", path)
    return doc


def attention_tuned_weights(exp: str | os.PathLike, lm: Optional[str | os.PathLike]) -> Optional[dict[str, float]]:
    """``{"lm_weight", "ctc_weight", "length_bonus"}`` from ``EXP/lm_tuning.yaml`` when it was tuned
    with this LM (or, ``lm`` None, without one); None otherwise (with a warning on stderr when a file
    exists but was tuned for another LM). For ``asrkit decode``'s defaults."""
    from asrkit import log

    doc = read_attention_tuning(exp)
    if doc is None:
        return None
    path = Path(exp) / TUNING_FILE
    tuned_lm = doc.get("lm")
    if tuned_lm is None and lm is not None:
        log.warn(f"{path} was tuned without an LM, not with {lm}; using the default weights "
                 f"(rerun 'asrkit tune' with --lm)")
        return None
    if tuned_lm is not None and (lm is None or not (_same_path(Path(tuned_lm), Path(lm))
                                                     or _abs(lm) == str(tuned_lm))):
        log.warn(f"{path} was tuned for LM {tuned_lm}, not " + (f"{lm}" if lm is not None else "without one") +
                 "; using the default weights (rerun 'asrkit tune' with this LM)")
        return None
    return {k: doc[k] for k in ("lm_weight", "ctc_weight", "length_bonus")}


# -- n-best rescoring --------------------------------------------------------------------------------
#
# An n-best jsonl file (asrkit decode --nbest N) is tuned for 'asrkit rescore': every hypothesis is
# scored by the LM once (asrkit.pipeline.rescore), and each point of --lm-weights x --length-bonuses
# only re-ranks the lists and scores the winners against the reference. The best point goes to
# EXP/rescore_tuning.yaml (a record of how it was found: 'asrkit rescore' takes its weights on the
# command line, as the 'best:' line prints them).

#: Default grids of n-best rescoring: LM weights (on the natural-log LM probability) and per-word
#: length bonuses.
RESCORE_GRIDS = {"lm_weights": "0:2:0.1", "length_bonuses": "-1:3:0.5"}
#: Written into the exp dir by the rescoring tuning.
RESCORE_TUNING_FILE = "rescore_tuning.yaml"


@dataclass(frozen=True)
class RescorePoint(_Scored):
    """One rescoring grid point's word counts (``counts.rate`` is its %WER)."""

    lm_weight: float
    length_bonus: float
    counts: Counts


def best_rescore_point(points: Sequence[RescorePoint]) -> RescorePoint:
    """Fewest word errors; ties: smallest ``|length_bonus|``, then smallest ``lm_weight`` (then the
    negative bonus of a +-b pair): independent of the order of ``points``."""
    if not points:
        raise ValueError("no grid points")
    return min(points, key=lambda p: (p.errors, abs(p.length_bonus), p.lm_weight, p.length_bonus))


def rescore_search_grid(utts: Sequence[Any], refs: dict[str, list[str]], *, lm_weights: Sequence[float],
                        length_bonuses: Sequence[float],
                        on_progress: Optional[Callable[[int], None]] = None) -> list[RescorePoint]:
    """Re-rank the n-best lists ``utts`` (:class:`asrkit.pipeline.rescore.NbestUtterance`, their
    candidates LM-scored by :func:`asrkit.pipeline.rescore.score_candidates`) at every
    ``(lm_weight, length_bonus)`` (grid order: LM weight outer) and score the winners against
    ``refs``. ``on_progress(n)`` is called once per point with the number of utterances."""
    from asrkit.pipeline.rescore import check_weights, choose
    from asrkit.score import score

    if not lm_weights or not length_bonuses:
        raise UsageError("the grid is empty")
    missing = [u.utt for u in utts if u.utt not in refs]
    if missing:
        raise DataError(f"no reference for {len(missing)} utterance(s): {', '.join(missing[:_MAX_LISTED])}")
    names = [u.utt for u in utts]
    points: list[RescorePoint] = []
    for w in lm_weights:
        for b in length_bonuses:
            check_weights(float(w), float(b))
            hyps = {u.utt: u.candidates[choose(u, float(w), float(b))[0]].words for u in utts}
            result = score({n: refs[n] for n in names}, hyps, mode="strict", ref_name="REF",
                           hyp_name=f"grid point {w:g}/{b:g}")
            points.append(RescorePoint(float(w), float(b), result.words))
            if on_progress is not None:
                on_progress(len(utts))
    return points


def rescore_grid_table(points: Sequence[RescorePoint], best: RescorePoint,
                       title: str = "LM weight / length bonus grid (n-best rescoring)"):
    """The rescoring grid as a :class:`asrkit.score.report.Table` (best row marked ``*``)."""
    return _table(title, ["LM_WEIGHT", "LENGTH_BONUS"], points, best, lambda p: (p.lm_weight, p.length_bonus))


def write_rescore_tuning(exp: str | os.PathLike, points: Sequence[RescorePoint], *, lm: str | os.PathLike,
                         nbest: str | os.PathLike, ref: str | os.PathLike, decoder_lm_weight: Optional[float],
                         utterances: int, hypotheses: int) -> Path:
    """Write the best of ``points`` and how it was found to ``EXP/rescore_tuning.yaml``
    (atomically); returns the path."""
    best = best_rescore_point(points)
    doc = {
        "search": "rescore",
        "lm_weight": best.lm_weight,
        "length_bonus": best.length_bonus,
        "wer": None if best.wer is None else round(best.wer, 4),
        "errors": best.errors,
        "words": best.words,
        "decoder_lm_weight": decoder_lm_weight,
        "lm": _abs(lm),
        "nbest": _abs(nbest),
        "ref": _abs(ref),
        "utterances": int(utterances),
        "hypotheses": int(hypotheses),
        "grid_size": len(points),
        "lm_weights": sorted({p.lm_weight for p in points}),
        "length_bonuses": sorted({p.length_bonus for p in points}),
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }
    return _write_yaml(Path(exp) / RESCORE_TUNING_FILE, doc,
                       "# written by 'asrkit tune' on an n-best file: the rescoring LM weight and length bonus "
                       "with the\n# lowest WER on 'ref'; give them to "
                       "'asrkit rescore --lm-weight A --length-bonus B'.\n")
