"""verl GRPO as the trainer backend, run in its own environment (data, config, process, backend)."""
