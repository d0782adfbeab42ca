"""Inference backends behind one small interface (see :mod:`inference.base`)."""
