"""Long-form decoding: cuts at pauses, pieces through map_batches, joined results (CTC and attention)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.data import FeatureStore
from asrkit.data.feature_store import ShardWriter, merge_shards
from asrkit.data.table import write_table
from asrkit.decode.emissions import iter_outputs, map_batches
from asrkit.decode.longform import chunk_frames, join_hypotheses, loudness, pause_cuts, piece_bounds
from asrkit.decode.output import Hypothesis
from asrkit.errors import UsageError


def _quiet_at(total: int, dips: list[int], width: int = 20) -> torch.Tensor:
    loud = torch.ones(total)
    for d in dips:
        loud[max(0, d - width // 2):d + width // 2] = -3.0
    return loud


def test_pause_cuts_land_in_the_pauses_and_bound_every_piece():
    loud = _quiet_at(1000, [240, 430, 700, 880])
    cuts = pause_cuts(loud, 300, window=10)
    assert cuts == [240, 430, 700]  # the quiet stretch inside each window [start + 150, start + 300]
    pieces = piece_bounds(cuts, 1000)
    assert pieces[0] == (0, 240) and pieces[-1] == (700, 1000)
    assert all(0 < e - s <= 300 for s, e in pieces)


def test_pause_cuts_without_pauses_still_bound_the_pieces_and_round_to_the_subsampling():
    loud = torch.ones(2000) + 0.01 * torch.randn(2000, generator=torch.Generator().manual_seed(0))
    cuts = pause_cuts(loud, 256, multiple=4)
    assert cuts and all(c % 4 == 0 for c in cuts)
    assert all(0 < e - s <= 256 for s, e in piece_bounds(cuts, 2000))
    assert pause_cuts(loud[:256], 256) == []


def test_chunk_frames_reads_the_frame_shift_and_rejects_bad_values():
    class Store:
        conf = {"frame_shift": 20.0}

    assert chunk_frames(None) == 2000           # default 20 s at 10 ms
    assert chunk_frames(5, Store()) == 250
    assert chunk_frames(0) is None
    for bad in (0.5, -3, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="--chunk-seconds"):
            chunk_frames(bad)


def _store(path, lengths: dict[str, int], dim: int = 6):
    rng = np.random.default_rng(0)
    with ShardWriter(path, 0) as w:
        for u, t in lengths.items():
            x = rng.standard_normal((t, dim)).astype(np.float32)
            x[t // 3:t // 3 + 12] -= 5.0                    # a pause a third of the way in
            w.add(u, "spk", x)
    merge_shards(path, 1)
    write_table(path / "text", {u: "a" for u in lengths})
    return FeatureStore(path)


def test_map_batches_runs_long_utterances_in_pieces_and_joins_them_in_order(tmp_path):
    store = _store(tmp_path / "s", {"a": 40, "b": 260, "c": 35, "d": 90})
    seen, counted = [], []

    def fn(names, feats, lengths):
        seen.extend(int(n) for n in lengths)
        return [feats[b, :int(lengths[b])].clone() for b in range(len(names))]

    def join(utt, parts, starts):
        assert starts == sorted(starts) and starts[0] == 0
        return torch.cat(parts)

    out = list(map_batches(store, fn, batch_size=2, max_frames=64, join=join, on_batch=counted.append))
    assert max(seen) <= 64 and len(seen) > 4        # b and d in pieces, a and c whole
    assert sum(counted) == 4                          # progress counts utterances, not pieces
    for u, got in zip(["a", "b", "c", "d"], out):
        assert torch.equal(got, torch.from_numpy(store.get(u)))


def test_ctc_emissions_of_a_frame_local_model_are_the_same_in_pieces(tmp_path):
    store = _store(tmp_path / "s", {"a": 300, "b": 50})

    class PerFrame(torch.nn.Module):
        subsampling = 1

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 5)

        def forward(self, x, lengths):
            return self.lin(x), lengths

    model = PerFrame().eval()
    whole = list(iter_outputs(model, store))
    pieces = list(iter_outputs(model, store, max_frames=80))
    for w, p in zip(whole, pieces):
        assert w.utt == p.utt and w.frames == p.frames
        torch.testing.assert_close(w.log_probs, p.log_probs)


def _hyp(tokens, score, out_frames, nbest=None, **extra):
    extra = {"att_score": score, "length": len(tokens), "attention_max": 0.5, "hit_max_len": False, **extra}
    if nbest is not None:
        extra["nbest"] = nbest
    return Hypothesis(utt="x", tokens=tokens, score=score, frames=out_frames * 4, out_frames=out_frames,
                      units=list("".join(tokens)), extra=extra,
                      token_frames=[(i, i + 1) for i in range(len(tokens))], frame_seconds=0.04)


def test_join_hypotheses_concatenates_sums_and_shifts_times():
    a = _hyp(["the", "cat"], -2.0, 10, nbest=[{"hyp": "the cat", "score": -2.0}, {"hyp": "a cat", "score": -3.0}])
    b = _hyp(["sat"], -1.0, 5, hit_max_len=True, nbest=[{"hyp": "sat", "score": -1.0}])
    j = join_hypotheses("x", [a, b], [0, 40])
    assert j.tokens == ["the", "cat", "sat"] and j.score == -3.0
    assert j.frames == 60 and j.out_frames == 15
    assert j.token_frames == [(0, 1), (1, 2), (10, 11)]
    assert j.extra["att_score"] == -3.0 and j.extra["length"] == 3 and j.extra["hit_max_len"] is True
    assert j.extra["pieces"] == 2
    assert j.extra["nbest"] == [{"hyp": "the cat sat", "score": -3.0}, {"hyp": "a cat sat", "score": -4.0}]
    assert join_hypotheses("x", [a], [0]) is a


def test_loudness_is_the_feature_mean():
    x = torch.tensor([[1.0, 3.0], [-2.0, 0.0]])
    assert loudness(x).tolist() == [2.0, -1.0]


def _cli(capsys, *args):
    from asrkit.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_decode_cli_chunks_long_utterances_into_one_line_each(capsys, ctc_exp, tmp_path):
    store = _store(tmp_path / "s", {"long": 300, "short": 60}, dim=20)
    code, whole, err = _cli(capsys, "decode", str(ctc_exp), str(tmp_path / "s"), "--device", "cpu",
                            "--chunk-seconds", "0", "--format", "jsonl")
    assert code == 0, err
    code, out, err = _cli(capsys, "decode", str(ctc_exp), str(tmp_path / "s"), "--device", "cpu",
                          "--chunk-seconds", "1", "--format", "jsonl")
    assert code == 0, err
    import json

    rows = {r["utt"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == set(store.keys()) and rows["long"]["frames"] == 300
    assert {r["utt"]: r for r in map(json.loads, whole.splitlines())}["short"] == rows["short"]


@pytest.mark.parametrize("bad", ["0.5", "-1", "nan"])
def test_decode_cli_rejects_a_bad_chunk_length(capsys, ctc_exp, store, bad):
    code, out, err = _cli(capsys, "decode", str(ctc_exp), str(store), "--chunk-seconds", bad)
    assert code != 0 and not out
    assert "--chunk-seconds must be 0" in err and len(err.strip().splitlines()) == 1
