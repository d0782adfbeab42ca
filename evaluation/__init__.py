"""Evaluation of policies on BFCL v4 (single- and multi-turn) with bfcl-eval's own data and checkers,
and the promotion gate that decides on those evaluations.

- :mod:`evaluation.bfcl_checker`: the boundary to bfcl-eval's AST checker (imported without its model
  registry, see the module docstring and ``docs/evaluation.md``).
- :mod:`evaluation.bfcl_multi_turn`: the boundary to bfcl-eval's multi-turn checker, executor and
  simulated APIs (private instances per conversation; model output never reaches ``eval`` as code).
- :mod:`evaluation.suite`: the categories and items, ground truth as our labels.
- :mod:`evaluation.scoring`: parse → BFCL model-output form → checker; BFCL's summary columns.
- :mod:`evaluation.multi_turn`: BFCL's multi-turn inference protocol through our backends, and scoring.
- :mod:`evaluation.runner`: generate with an inference backend and score; per-item result files.
- :mod:`evaluation.heldout`: the held-out ToolMatch set a checkpoint's evaluation also scores.
- :mod:`evaluation.gate`: the promotion gate's rule and settings (pure).
- :mod:`evaluation.report`: rich tables, the per-round plot, the gate's decisions.
- :mod:`evaluation.decontam`: keep the suite's questions (multi-turn included) out of training.
- :mod:`evaluation.parity`: ToolMatch against BFCL's checker on perturbed ground truth.
- :mod:`evaluation.multi_turn_parity`, :mod:`evaluation.single_turn_parity`: our scoring against
  bfcl-eval's own evaluation; :mod:`evaluation.verdict_parity`: the outcomes and counts both share.
"""
