"""Simulated Raspberry Pi 5-class board: physics, fault injection, scriptable by tests.

Only ``wrale.metal.hw.registry``, tests and demos import this package; the core sees it
through the ``Board`` protocol of ``wrale.metal.hw.base``.
"""

from wrale.metal.hw.sim.board import SimBoard

__all__ = ["SimBoard"]
