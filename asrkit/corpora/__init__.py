"""Where data dirs come from.

- ``asrkit.corpora.importers``: WSJ, LibriSpeech, kaggle-11785 and plain folders.
- ``asrkit.corpora.synth``: ``asrkit corpus synth``, synthesized speech with exact phone alignments.
- ``asrkit.corpora.textnorm``: number/ordinal/abbreviation normalization for transcripts.
- ``asrkit.corpora.tiny``: the embedded tiny corpus (``asrkit corpus tiny``).
- ``asrkit.corpora.asterisk``: the Asterisk prompts real-speech test set (``asrkit corpus asterisk``).
"""
