"""``asrkit featurize DATA OUT``: Kaldi-compatible features into a feature store."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from asrkit import log
from asrkit.errors import UsageError


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be I/N (e.g. 0/8), got '{text}'") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return i, n


def featurize(
    data: Path = typer.Argument(..., help="Data dir (wav.scp, utt2spk, ...)."),
    out: Path = typer.Argument(..., help="Feature store folder to write."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Config overrides key=value (e.g. num_mel_bins=40)."),
    conf: Optional[Path] = typer.Option(None, "--conf", help="Feature config YAML (default: conf/fbank80.yaml settings)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes, each doing whole shards on one core."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Do only shard I of N (I/N), for cluster array jobs."),
    merge: bool = typer.Option(False, "--merge", help="Join the shards written by --shard runs."),
    num_shards: Optional[int] = typer.Option(None, "--num-shards", help="Shards to cut the data into (first run only)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable audio, listing it in OUT/skipped.txt."),
    fmt: str = typer.Option("store", "--format", help="store | kaldi (also feats.ark/scp + cmvn.ark/scp)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace what OUT holds (needed when OUT is not empty and was not made "
                                        "by featurize; a store featurize made is resumed without it)."),
    pipe_timeout: float = typer.Option(600.0, "--pipe-timeout", metavar="SECONDS",
                                       help="Kill a piped wav.scp command that runs longer (the utterance fails; "
                                            "with --skip-bad it is listed in skipped.txt)."),
) -> None:
    """Compute fbank/MFCC features (+ CMVN stats) of a data dir into a
    resumable, memory-mapped feature store."""
    from asrkit.features import FeatureConfig
    from asrkit.features.pipeline import featurize as run
    from asrkit.features.pipeline import merge_only

    if fmt not in ("store", "kaldi"):
        raise UsageError(f"--format must be store or kaldi, got '{fmt}'")
    if merge and shard is not None:
        raise UsageError("--merge and --shard go in separate runs")
    if merge:
        total = merge_only(data, out, kaldi=fmt == "kaldi")
        log.info(f"{out}: merged {total['utterances']} utterances ({total['skipped']} skipped)")
        return
    cfg = FeatureConfig.load(conf, overrides or [])
    r = run(data, out, cfg, jobs=jobs, shard=_parse_shard(shard) if shard else None, skip_bad=skip_bad,
            kaldi=fmt == "kaldi", overwrite=overwrite, num_shards=num_shards, pipe_timeout=pipe_timeout)
    if r.shards_done:
        speed = r.seconds_audio / max(r.wall, 1e-9)
        log.info(f"{out}: {r.utterances} utterances, {r.seconds_audio / 3600:.2f} h audio in {r.wall:.1f} s "
                 f"({speed:.0f}x real time), {r.skipped} skipped")


def register(app: typer.Typer) -> None:
    app.command("featurize")(featurize)
