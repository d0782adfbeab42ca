"""looptool."""
