"""Efficiency-method stages for the models of every family (`training.families`; see ../../README.md, "Efficiency stages and kernels").

`spans` (per-sample vision/text spans), `layer_loop` (the decoder layer loop that drops tokens), `flops`,
`data` (release batches and the fine-tuned model), and one module per method: `fitprune`, `gprune`,
`dyvte`, `gamma_mod`, `roe`, `flashsloth`. The CLI is ``python -m training.efficiency METHOD``.
"""

METHODS = ("fitprune", "gprune", "dyvte", "gamma-mod", "roe", "flashsloth")  # the CLI's stages
