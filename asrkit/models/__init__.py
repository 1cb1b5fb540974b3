"""asrkit.models: acoustic models built from :mod:`asrkit.nn` layers.

* ``frame_mlp`` (:class:`FrameMLP`): frame-level phoneme classifier over a +-K context window.
* ``ctc`` (:class:`CTCModel`): Conv2d subsampling (x2/x4) -> BiLSTM / BiGRU / Conformer -> Linear.
* ``las`` (:class:`LAS`): Listen, Attend and Spell (pyramidal BiLSTM listener, LSTMCell speller,
  dot or location-aware attention).
* ``transformer`` (:class:`TransformerS2S`): joint CTC/attention, Conv2d x4 -> Transformer or
  Conformer encoder (+ CTC head) -> Transformer decoder.
* ``lm_lstm`` (:class:`LSTMLM`), ``lm_transformer`` (:class:`TransformerLM`): language models over
  token ids (no ``input_dim``); ``logits = model(tokens)``, ``logp = model(tokens, targets)`` and
  ``init_state`` / ``step``, see
  :mod:`asrkit.models.lm`.
* ``resnet`` (:class:`ResNet`): a ResNet-style image classifier with an embedding layer and a softmax,
  ArcFace or CosFace head (the face task); ``logits = model(images, labels)``, ``model.embed(images)``,
  see :mod:`asrkit.models.resnet`.
* ``dcgan`` (:class:`DCGAN`): a DCGAN generator and discriminator (the gan task); ``images = model(z)``,
  ``model.discriminate(images)``, see :mod:`asrkit.models.dcgan`.

The frame and CTC models are called the same way::

    model = build_model(config["model"])
    logits, out_lengths = model(feats, lengths)  # (B, T, D), (B,) -> (B, T', C), (B,)
    model.subsampling                            # 1, 2 or 4; out_lengths = model.output_lengths(lengths)

the attention models (:class:`Seq2SeqModel`, see :mod:`asrkit.models.seq2seq`) as
``out = model(feats, lengths, targets, target_lengths)`` for training and
``model.encode`` / ``init_state`` / ``step`` for decoding; ``model, config =
load_model(exp_dir)`` rebuilds any trained one from an exp dir. ``impl`` (``scratch`` | ``native``) picks the layers' implementation; it
is not part of the weights, so a checkpoint moves between the two.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
import yaml

from asrkit.errors import ConfigError, InputError
from asrkit.models import dcgan, resnet
from asrkit.models.config import DEFAULTS, LM_TYPES, MODEL_TYPES
from asrkit.models.config import resolve_model_config as _resolve_speech_config
from asrkit.models.dcgan import DCGAN
from asrkit.models.ctc import CTCModel, Conv2dSubsampling, subsampled_lengths
from asrkit.models.frame import FrameMLP, context_window
from asrkit.models.las import LAS
from asrkit.models.resnet import ResNet
from asrkit.models.lm import LSTMLM, LanguageModel, TransformerLM
from asrkit.models.seq2seq import EOS, SOS, Encoded, Seq2SeqModel, Seq2SeqOutput
from asrkit.models.transformer import TransformerS2S
from asrkit.nn import IMPLS, set_impl

__all__ = [
    "build_model", "load_model", "checkpoint_path", "resolve_model_config", "DEFAULTS", "MODEL_TYPES", "LM_TYPES",
    "FrameMLP", "CTCModel", "Conv2dSubsampling", "context_window", "subsampled_lengths",
    "LAS", "TransformerS2S", "Seq2SeqModel", "Seq2SeqOutput", "Encoded", "SOS", "EOS",
    "LanguageModel", "LSTMLM", "TransformerLM", "IMAGE_MODELS", "ResNet", "DCGAN",
]

#: image model types: each module has its own config check (``resolve_config``) and ``build``
IMAGE_MODELS = {"resnet": resnet, "dcgan": dcgan}


def resolve_model_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``model`` section checked, with its defaults filled in (:mod:`asrkit.models.config`;
    the image models' own modules for theirs); ConfigError naming the first bad key."""
    kind = cfg.get("type") if isinstance(cfg, Mapping) else None
    if isinstance(kind, str) and kind in IMAGE_MODELS:
        return IMAGE_MODELS[kind].resolve_config(cfg)
    if isinstance(cfg, Mapping) and "type" in cfg and (isinstance(kind, bool) or kind not in MODEL_TYPES):
        raise ConfigError(f"model.type: expected one of {', '.join((*MODEL_TYPES, *IMAGE_MODELS))}, got {kind!r}")
    return _resolve_speech_config(cfg)


def build_model(model_cfg: Mapping[str, Any]) -> torch.nn.Module:
    """Build a model from the ``model`` section of a config (see :mod:`asrkit.models.config`).

    Missing optional keys take their defaults; a missing required key, an
    unknown key or a bad value raises :class:`ConfigError` naming it. The
    resolved settings are kept as ``model.config``.
    """
    cfg = resolve_model_config(model_cfg)
    if cfg["type"] in IMAGE_MODELS:
        model = IMAGE_MODELS[cfg["type"]].build(cfg)
    elif cfg["type"] == "frame_mlp":
        model = FrameMLP(cfg["input_dim"], cfg["num_classes"], cfg["context"], cfg["hidden"], cfg["dropout"],
                         impl=cfg["impl"])
    elif cfg["type"] == "las":
        model = LAS(cfg["input_dim"], cfg["num_classes"], cfg["listener_hidden"], cfg["listener_layers"],
                    cfg["pyramid_layers"], cfg["dropout"], cfg["locked_dropout"], cfg["frontend"],
                    cfg["frontend_subsampling"], cfg["conv_channels"], cfg["attention"], cfg["attention_dim"],
                    cfg["location_channels"], cfg["location_kernel"], cfg["embed_dim"], cfg["speller_hidden"],
                    cfg["speller_layers"], cfg["ctc_weight"], impl=cfg["impl"])
    elif cfg["type"] == "lm_lstm":
        model = LSTMLM(cfg["num_classes"], cfg["embed_dim"], cfg["hidden"], cfg["layers"], cfg["dropout"],
                       cfg["embed_dropout"], cfg["input_dropout"], cfg["hidden_dropout"], cfg["tie_weights"],
                       cfg["adaptive_cutoffs"], cfg["adaptive_div"], impl=cfg["impl"])
    elif cfg["type"] == "lm_transformer":
        model = TransformerLM(cfg["num_classes"], cfg["hidden"], cfg["heads"], cfg["ff_mult"], cfg["layers"],
                              cfg["dropout"], cfg["pos_enc"], cfg["max_len"], cfg["tie_weights"],
                              cfg["adaptive_cutoffs"], cfg["adaptive_div"], impl=cfg["impl"])
    elif cfg["type"] == "transformer":
        model = TransformerS2S(cfg["input_dim"], cfg["num_classes"], cfg["encoder"], cfg["hidden"], cfg["heads"],
                               cfg["ff_mult"], cfg["encoder_layers"], cfg["decoder_layers"], cfg["dropout"],
                               cfg["subsampling"], cfg["conv_channels"], cfg["conv_kernel"], cfg["pos_enc"],
                               cfg["ctc_weight"], impl=cfg["impl"])
    else:
        model = CTCModel(cfg["input_dim"], cfg["num_classes"], cfg["subsampling"], cfg["encoder"], cfg["hidden"],
                         cfg["layers"], cfg["dropout"], cfg["conv_channels"], cfg["heads"], cfg["ff_mult"],
                         cfg["conv_kernel"], cfg["pos_enc"],
                         tuple(cfg["inter_ctc_layers"] or ()) if cfg["inter_ctc_weight"] > 0 else (),
                         cfg["inter_ctc_condition"], impl=cfg["impl"])
    model.config = cfg
    return model


def checkpoint_path(exp_dir: Union[str, os.PathLike], checkpoint: str = "best") -> Path:
    """``exp_dir/checkpoints/<checkpoint>.pt``; a ``checkpoint`` that names an existing file is used as is."""
    given = Path(checkpoint)
    if given.suffix == ".pt" and given.is_file():
        return given
    return Path(exp_dir) / "checkpoints" / f"{checkpoint}.pt"


def load_model(exp_dir: Union[str, os.PathLike], checkpoint: str = "best", device: Union[str, torch.device] = "cpu",
               impl: Optional[str] = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained model: ``(model in eval mode on device, full config)``.

    Reads ``exp_dir/config.yaml`` (its ``model`` section) and the checkpoint
    ``exp_dir/checkpoints/<checkpoint>.pt`` (``"best"``, ``"last"``,
    ``"epoch-3"``, or a path to a ``.pt`` file), whose ``"model"`` entry is
    the state_dict. ``impl`` overrides ``model.impl`` (the returned config says
    which one the model now uses). ``device="auto"`` picks CUDA when present.
    The checkpoint is read with ``torch.load(weights_only=True)``: one that
    holds pickled code is refused (:class:`InputError`), never run.
    """
    exp_dir = Path(exp_dir)
    cfg_path = exp_dir / "config.yaml"
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path}: no such file; is {exp_dir} an exp dir written by `asrkit train`?")
    try:
        config = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(f"{cfg_path}: not a readable YAML file ({err})") from None
    if not isinstance(config, dict) or "model" not in config:
        raise InputError(f"{cfg_path}: has no 'model' section; is it a config written by `asrkit train`?")
    if impl is not None and impl not in IMPLS:
        raise ConfigError(f"impl: expected one of {', '.join(IMPLS)}, got {impl!r}")
    try:
        model = build_model(config["model"])
    except ConfigError as err:
        raise ConfigError(f"{cfg_path}: {err}") from None
    ckpt_path = checkpoint_path(exp_dir, checkpoint)
    if not ckpt_path.is_file():
        found = sorted(p.stem for p in (exp_dir / "checkpoints").glob("*.pt"))
        raise InputError(f"{ckpt_path}: no such checkpoint (found: {', '.join(found) or 'none'}); "
                         f"pick one with the checkpoint option")
    from asrkit.checkpoint import load_weights, read_checkpoint

    ckpt = read_checkpoint(ckpt_path)  # weights only: a checkpoint that would run code is refused
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(state, Mapping):
        raise InputError(f"{ckpt_path}: has no 'model' state_dict; is it a checkpoint written by `asrkit train`?")
    load_weights(model, state, ckpt_path, of=cfg_path)
    if impl is not None:
        set_impl(model, impl)
        model.config["impl"] = impl
    config = dict(config)
    config["model"] = dict(model.config)
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), config
