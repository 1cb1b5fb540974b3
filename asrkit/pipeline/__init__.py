"""End-to-end flows that chain the rooms above; sits just under cli.

- :mod:`asrkit.pipeline.demo`: the demo (tiny corpus -> features -> CTC training ->
  greedy and LM-beam decoding -> PER/WER tables; ``asrkit demo``);
- :mod:`asrkit.pipeline.tune`: LM weight / word bonus grid search over a dev
  set (``asrkit tune``): decode (:mod:`asrkit.decode`) then score
  (:mod:`asrkit.score`) at every grid point.
"""
