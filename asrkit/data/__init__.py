"""On-disk formats: Kaldi-style data dirs, the feature store, datasets,
tokenizers and lexicons."""
