"""``asrkit data validate``: the checks of Kaldi's ``validate_data_dir.sh``.

:func:`validate` returns a list of :class:`Problem` (empty when the dir is
good). Each problem names the file and, when it is about one utterance, the
utt-id, so :func:`fix` can drop exactly the bad utterances.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asrkit.data.datadir import DataDir, is_extra_table, read_segments, read_spk2utt, read_utt2dur, read_utt2spk
from asrkit.data.table import read_table, sorted_keys
from asrkit.errors import AsrkitError, InputError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data dir."""

    file: str
    message: str
    utt: str | None = None

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


def _read_raw(path: Path, problems: list[Problem], reader=read_table):
    """Read a table, turning a hard parse error into a problem."""
    try:
        return reader(path)
    except InputError as e:
        problems.append(Problem(path.name, str(e)))
        return None


def _check_sorted(path: Path, keys: list[str], problems: list[Problem]) -> None:
    if keys != sorted_keys(keys):
        bad = next(b for a, b in zip(keys, keys[1:]) if a.encode() > b.encode())
        problems.append(Problem(path.name, f"not sorted in C-locale order (first out of place: '{bad}'); "
                                           f"run 'asrkit data validate {path.parent} --fix OUTDIR'"))


def validate(path: str | os.PathLike, check_audio: bool = True) -> list[Problem]:
    """Check a data dir on disk; returns the problems found (empty = valid).

    Checks: every table parses, is sorted and has unique ids; utt2spk,
    spk2utt, text, wav.scp/segments, utt2dur and ali agree on the utt-ids;
    speaker ids prefix utt ids; no empty transcripts; segments point into
    wav.scp with start < end and do not overlap another segment of the same
    recording and speaker; and (``check_audio``) every audio file exists
    and its header opens, piped commands' programs are on PATH, and every
    duration is known and positive.
    """
    p = Path(path)
    if not p.is_dir():
        return [Problem(str(p), "no such data dir")]
    problems: list[Problem] = []
    tables: dict = {}
    readers = {"wav.scp": read_table, "text": read_table, "utt2spk": read_utt2spk, "spk2utt": read_spk2utt,
               "segments": read_segments, "utt2dur": read_utt2dur, "ali": read_table}
    for name, reader in readers.items():
        if (p / name).exists():
            t = _read_raw(p / name, problems, reader)
            if t is not None:
                tables[name] = t
                _check_sorted(p / name, list(t), problems)
    if "utt2spk" not in tables:
        if not (p / "utt2spk").exists():
            problems.append(Problem("utt2spk", "missing (every data dir needs utt2spk)"))
        return problems
    utt2spk: dict[str, str] = tables["utt2spk"]
    utts = set(utt2spk)
    if not utts:
        problems.append(Problem("utt2spk", "is empty"))
        return problems

    for u, s in utt2spk.items():
        if not u.startswith(s):
            problems.append(Problem("utt2spk", f"speaker id '{s}' is not a prefix of utterance id '{u}' "
                                               f"(Kaldi sorting needs it)", u))
    if "spk2utt" in tables:
        derived: dict[str, list[str]] = {}
        for u in sorted_keys(utt2spk):
            derived.setdefault(utt2spk[u], []).append(u)
        if tables["spk2utt"] != derived:
            bad = sorted(set(derived) ^ set(tables["spk2utt"])) or [s for s in derived if derived[s] != tables["spk2utt"].get(s)]
            problems.append(Problem("spk2utt", f"does not match utt2spk (e.g. speaker '{bad[0]}'); "
                                               f"--fix rewrites it from utt2spk"))
    else:
        problems.append(Problem("spk2utt", "missing (--fix writes it from utt2spk)"))

    def same_ids(name: str, keys: set[str], required: bool) -> None:
        for u in sorted_keys(utts - keys):
            if required:
                problems.append(Problem(name, f"no line for utterance '{u}' (it is in utt2spk)", u))
        for u in sorted_keys(keys - utts):
            problems.append(Problem(name, f"utterance '{u}' is not in utt2spk", u))

    has_store = (p / "feats" / "index.tsv").exists() or (p / "feats.scp").exists()
    segs = tables.get("segments")
    wav = tables.get("wav.scp")
    if "wav.scp" not in tables and not (p / "wav.scp").exists() and not has_store:
        problems.append(Problem("wav.scp", "missing (and no feature store feats/ or feats.scp)"))
    if segs is not None:
        same_ids("segments", set(segs), True)
        if wav is not None:
            for u, s in segs.items():
                if s.reco not in wav:
                    problems.append(Problem("segments", f"utterance '{u}': recording '{s.reco}' not in wav.scp", u))
                if s.start < 0 or (s.end > 0 and s.end <= s.start):
                    problems.append(Problem("segments", f"utterance '{u}': bad times {s.start} {s.end}", u))
        problems.extend(_overlaps(segs, utt2spk))
    elif wav is not None:
        same_ids("wav.scp", set(wav), True)
    if "text" in tables:
        same_ids("text", set(tables["text"]), True)
        for u, t in tables["text"].items():
            if u in utts and not t.strip():
                problems.append(Problem("text", f"utterance '{u}' has an empty transcript", u))
    if "ali" in tables:
        same_ids("ali", set(tables["ali"]), True)
        for u, t in tables["ali"].items():
            if u in utts and not t.strip():
                problems.append(Problem("ali", f"utterance '{u}' has no frame labels", u))
    for f in sorted(p.iterdir()):
        if f.is_file() and is_extra_table(f.name):
            t = _read_raw(f, problems)
            if t is not None:
                _check_sorted(f, list(t), problems)
                same_ids(f.name, set(t), True)
    if "utt2dur" in tables:
        same_ids("utt2dur", set(tables["utt2dur"]), True)
        for u, d in tables["utt2dur"].items():
            if u in utts and not d > 0:
                problems.append(Problem("utt2dur", f"utterance '{u}' has duration {d}", u))
    if check_audio and wav is not None:
        problems.extend(_check_audio(p, wav, segs, utt2spk, tables.get("utt2dur")))
    return problems


#: Seconds two segments of one speaker in one recording may share (rounding of the times).
OVERLAP_TOLERANCE = 0.01


def _overlaps(segs: dict, utt2spk: dict[str, str]) -> list[Problem]:
    """A segment that starts before the previous segment of the same recording and speaker ends
    (one speaker does not say two things at once: the times are wrong)."""
    problems = []
    groups: dict[tuple[str, str], list[str]] = {}
    for u, s in segs.items():
        if u in utt2spk:
            groups.setdefault((s.reco, utt2spk[u]), []).append(u)
    for (reco, spk), utts in groups.items():
        utts.sort(key=lambda u: (segs[u].start, u.encode()))
        for prev, u in zip(utts, utts[1:]):
            end = segs[prev].end if segs[prev].end > 0 else float("inf")
            if end > segs[u].start + OVERLAP_TOLERANCE:
                until = "the end of the recording" if end == float("inf") else f"{end}s"
                problems.append(Problem("segments", f"utterance '{u}' ({segs[u].start}s..) overlaps '{prev}' "
                                                    f"(..{until}) of the same recording '{reco}' and speaker "
                                                    f"'{spk}'", u))
    return problems


def _check_audio(p: Path, wav: dict[str, str], segs, utt2spk, utt2dur) -> list[Problem]:
    from asrkit.audio import info, is_piped, missing_programs

    problems: list[Problem] = []
    reco_dur: dict[str, float | None] = {}
    reco_bad: dict[str, str] = {}
    for reco, src in wav.items():
        if is_piped(src):
            try:
                missing = missing_programs(src)
            except AsrkitError as e:
                reco_bad[reco] = str(e)
                continue
            if missing:
                reco_bad[reco] = f"piped command needs '{missing[0]}', not on PATH"
            else:
                reco_dur[reco] = None  # not run; known after featurize
            continue
        path = src  # relative paths are relative to the working directory (Kaldi convention)
        try:
            dur = info(path).duration
        except AsrkitError as e:
            reco_bad[reco] = str(e)
            continue
        if dur <= 0:
            reco_bad[reco] = f"{path}: zero-length audio"
        reco_dur[reco] = dur
    for u in sorted_keys(utt2spk):
        if segs is not None:
            s = segs.get(u)
            if s is None:
                continue
            reco = s.reco
        else:
            reco = u
        if reco not in wav:
            continue
        if reco in reco_bad:
            problems.append(Problem("wav.scp", f"utterance '{u}': {reco_bad[reco]}", u))
            continue
        dur = reco_dur.get(reco)
        if segs is not None and dur is not None and segs[u].end > dur + 0.05:
            problems.append(Problem("segments", f"utterance '{u}' ends at {segs[u].end}s, after the end "
                                                f"of recording '{reco}' ({dur:.3f}s)", u))
        if dur is None and utt2dur is None and segs is None:
            problems.append(Problem("utt2dur", f"utterance '{u}': duration unknown (piped audio and no utt2dur); "
                                               f"--fix computes it", u))
    return problems


def fix(path: str | os.PathLike, out: str | os.PathLike, check_audio: bool = True, *,
        command: str = "data validate --fix", overwrite: bool = False) -> tuple[DataDir, list[Problem]]:
    """Write a consistent copy of a data dir to ``out``: sorted tables,
    spk2utt from utt2spk, only the utterances that are in utt2spk and every
    other present table and have no per-utterance problem; utt2dur filled
    in. Returns ``(the new dir, the problems of dropped utterances)``.

    A problem that is not about one utterance (e.g. a malformed line that
    stops a table from parsing) cannot be fixed: it raises the
    :class:`InputError`. ``out`` follows :func:`asrkit.io.prepare_output_dir`
    (``command`` names the writer in its marker; ``overwrite`` replaces a
    folder another command made); it is checked before any work.
    """
    from asrkit.io import check_output_dir

    check_output_dir(out, command, overwrite, inputs=(path,))
    problems = validate(path, check_audio=check_audio)
    d = DataDir.load(path)  # raises on unparsable tables
    bad = {pr.utt for pr in problems if pr.utt is not None}
    keep = [u for u in d.utt_ids
            if u not in bad
            and (d.text is None or u in d.text)
            and (d.ali is None or u in d.ali)
            and (d.utt2dur is None or u in d.utt2dur)
            and all(u in t for t in d.extra.values())
            and (not d.wav_scp or (d.segments is not None and u in d.segments) or (d.segments is None and u in d.wav_scp))]
    new = d.subset(keep)
    dropped = [pr for pr in problems if pr.utt is not None]
    for u in d.utt_ids:
        if u not in bad and u not in set(keep):
            dropped.append(Problem("utt2spk", f"utterance '{u}' is missing from another table", u))
    if new.wav_scp and check_audio:
        durs: dict[str, float] = {}
        for u in list(new.utt_ids):
            try:
                durs[u] = new.duration(u)
            except AsrkitError as e:
                dropped.append(Problem("wav.scp", f"utterance '{u}': {e}", u))
        if len(durs) != len(new):
            new = new.subset(durs)
        new.utt2dur = durs
    new.save_output(out, command, overwrite, inputs=(path,))
    return new, dropped
