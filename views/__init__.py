"""Readings of the event log: the LanceDB sample store, replay, export, lineage, analytics."""
