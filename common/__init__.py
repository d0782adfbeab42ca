"""Pieces every layer uses: structured logging and the settings base."""
