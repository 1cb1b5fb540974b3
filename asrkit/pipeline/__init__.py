"""End-to-end flows that chain the rooms; sits just under cli.

- :mod:`asrkit.pipeline.tune`: LM weight / word bonus grid search over a dev
  set (``asrkit tune``): decode (:mod:`asrkit.decode`) then score
  (:mod:`asrkit.score`) at every grid point.
"""
