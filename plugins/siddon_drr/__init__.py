"""Digitally reconstructed radiographs: the ``siddon`` and ``parallel`` projectors (docs/projectors.md)."""
