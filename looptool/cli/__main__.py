"""``python -m looptool.cli``: the command line (the demo starts its services this way)."""

from looptool.cli import app

app()
