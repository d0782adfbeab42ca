"""Evaluation of policies on BFCL v4 (single-turn) with bfcl-eval's own data and AST checker.

- :mod:`evaluation.bfcl_checker`: the boundary to bfcl-eval (its checker imported without its model
  registry, see the module docstring and ``docs/evaluation.md``).
- :mod:`evaluation.suite`: the categories and items, ground truth as our labels.
- :mod:`evaluation.scoring`: parse → BFCL model-output form → checker; BFCL's summary columns.
- :mod:`evaluation.runner`: generate with an inference backend and score; per-item result files.
- :mod:`evaluation.report`: rich tables and the per-round plot.
- :mod:`evaluation.decontam`: keep the suite's questions out of training.
- :mod:`evaluation.parity`: ToolMatch against BFCL's checker on perturbed ground truth.
"""
