"""Features: Kaldi-compatible fbank/MFCC (torchaudio.compliance.kaldi),
deltas, CMVN statistics, and the ``featurize`` pipeline that writes a
feature store.

    >>> from asrkit.features import FeatureConfig, compute
    >>> conf = FeatureConfig.load("conf/fbank80.yaml")
    >>> feats = compute(wave, conf)        # (T, 80) float32
"""
from asrkit.features.cmvn import CmvnStats, utterance_cmvn
from asrkit.features.compute import add_deltas, compute, num_frames
from asrkit.features.config import DEFAULT_FBANK80, FeatureConfig

__all__ = ["CmvnStats", "utterance_cmvn", "add_deltas", "compute", "num_frames", "DEFAULT_FBANK80",
           "FeatureConfig", "featurize"]


def __getattr__(name: str):
    if name == "featurize":
        from asrkit.features.pipeline import featurize

        return featurize
    raise AttributeError(name)
