"""On-disk formats: Kaldi-style data dirs, the feature store, datasets,
tokenizers and lexicons.

    >>> from asrkit.data import DataDir, validate, FeatureStore
    >>> d = DataDir.load("data/train"); d.save("data/copy")
    >>> problems = validate("data/train")          # [] when valid
    >>> store = FeatureStore("feats/train"); store["utt1"].shape   # (T, D)
"""
from __future__ import annotations

from asrkit.data.datadir import DataDir, Segment
from asrkit.data.validate import Problem, fix, validate

__all__ = ["DataDir", "Segment", "Problem", "fix", "validate", "FeatureStore"]


def __getattr__(name: str):
    # FeatureStore pulls numpy + yaml; import it lazily.
    if name == "FeatureStore":
        from asrkit.data.feature_store import FeatureStore

        return FeatureStore
    raise AttributeError(name)
