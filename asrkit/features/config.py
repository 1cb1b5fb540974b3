"""Feature configs: a YAML file naming the kind (``fbank`` or ``mfcc``), any
keyword of :func:`torchaudio.compliance.kaldi.fbank` / ``mfcc``, and deltas.

    type: fbank            # fbank | mfcc
    sample_frequency: 16000
    num_mel_bins: 80
    frame_length: 25.0     # ms
    frame_shift: 10.0      # ms
    dither: 0.0
    deltas: 0              # 0: none, 1: + delta, 2: + delta + delta-delta
    delta_window: 2        # Kaldi add-deltas --delta-window

Keys are checked against torchaudio's signature, so a typo is a
:class:`ConfigError`, not a silently ignored option.
"""
from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asrkit.errors import ConfigError, InputError, quote

KINDS = ("fbank", "mfcc")
_OWN_KEYS = ("type", "deltas", "delta_window")
# Audio-side keys handled by asrkit, not by the Kaldi routine.
_FORBIDDEN = ("waveform",)


def _kaldi_fn(kind: str):
    import torchaudio.compliance.kaldi as K

    return {"fbank": K.fbank, "mfcc": K.mfcc}[kind]


def kaldi_options(kind: str) -> dict[str, Any]:
    """Every option of the torchaudio Kaldi routine with its default (a new dict)."""
    return dict(_kaldi_defaults(kind))


@functools.lru_cache(maxsize=None)
def _kaldi_defaults(kind: str) -> dict[str, Any]:
    # inspect.signature takes ~0.3 ms; featurize asks for every utterance
    sig = inspect.signature(_kaldi_fn(kind))
    return {k: p.default for k, p in sig.parameters.items() if k not in _FORBIDDEN}


@dataclass
class FeatureConfig:
    """A resolved feature config: the kind, the Kaldi options that differ
    from torchaudio's defaults (plus the ones always written), and deltas."""

    type: str = "fbank"
    options: dict[str, Any] = field(default_factory=dict)
    deltas: int = 0
    delta_window: int = 2

    @property
    def sample_rate(self) -> int:
        return int(self.options.get("sample_frequency", 16000))

    @property
    def base_dim(self) -> int:
        """Features per frame before deltas."""
        if self.type == "fbank":
            return int(self.options.get("num_mel_bins", 23)) + int(bool(self.options.get("use_energy", False)))
        return int(self.options.get("num_ceps", 13))

    @property
    def dim(self) -> int:
        return self.base_dim * (1 + self.deltas)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.options, "deltas": self.deltas, "delta_window": self.delta_window}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "FeatureConfig":
        raw = dict(raw or {})
        kind = str(raw.pop("type", "fbank"))
        if kind not in KINDS:
            raise ConfigError(f"{source}: type '{kind}' unknown (use one of {', '.join(KINDS)})")
        deltas = raw.pop("deltas", 0)
        window = raw.pop("delta_window", 2)
        if deltas not in (0, 1, 2) or isinstance(deltas, bool):
            raise ConfigError(f"{source}: deltas must be 0, 1 or 2 (got {deltas!r})")
        if not isinstance(window, int) or window < 1:
            raise ConfigError(f"{source}: delta_window must be a positive integer (got {window!r})")
        allowed = kaldi_options(kind)
        for k, v in raw.items():
            if k not in allowed:
                near = [a for a in allowed if a.split("_")[0] == k.split("_")[0]]
                raise ConfigError(f"{source}: unknown {kind} option {quote(k)}"
                                  + (f" (did you mean {', '.join(near)}?)" if near else "")
                                  + f"; options: {', '.join(allowed)}")
            default = allowed[k]
            if isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ConfigError(f"{source}: {k} must be true or false (got {quote(v)})")
            elif isinstance(default, (int, float)) and not isinstance(default, bool):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{source}: {k} must be a number (got {quote(v)})")
                raw[k] = type(default)(v) if isinstance(default, float) else v
            elif isinstance(default, str) and not isinstance(v, str):
                raise ConfigError(f"{source}: {k} must be a string (got {quote(v)})")
        raw.setdefault("sample_frequency", 16000.0)
        raw.setdefault("dither", 0.0)
        return cls(kind, raw, int(deltas), int(window))

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> "FeatureConfig":
        """Read a YAML config (None: the default 80-bin fbank) and apply
        ``key=value`` overrides (values parsed as YAML)."""
        if path is None:
            raw: dict = dict(DEFAULT_FBANK80)
            name = "default fbank80 config"
        else:
            name = str(path)
            try:
                raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except FileNotFoundError:
                raise InputError(f"{path}: no such config file") from None
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML: {e}") from None
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: expected a mapping of options")
        for ov in overrides or []:
            if "=" not in ov:
                raise ConfigError(f"override '{ov}': expected key=value (e.g. num_mel_bins=40)")
            k, v = ov.split("=", 1)
            try:
                raw[k.strip()] = yaml.safe_load(v)
            except yaml.YAMLError:
                raw[k.strip()] = v
        return cls.from_dict(raw, name)

    def dump(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


DEFAULT_FBANK80: dict[str, Any] = {
    "type": "fbank",
    "sample_frequency": 16000.0,
    "num_mel_bins": 80,
    "frame_length": 25.0,
    "frame_shift": 10.0,
    "dither": 0.0,
    "deltas": 0,
    "delta_window": 2,
}
