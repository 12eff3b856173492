"""aakit: Adaptive Affinity + Label Reassign on RRM's single-stage WSSS network.

The core (``aakit.method``: losses, objective, pseudo labels, CRF; ``aakit.metrics``, ``aakit.models``,
``aakit.data``, ``aakit.engine``) imports neither typer nor textual; ``aakit.cli`` and
``aakit.tui`` sit on top.
"""
__version__ = "0.1.0"
