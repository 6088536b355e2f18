"""fleet.brain: the central server's domain — the fleet's memory and its decisions.

Models and repositories on SQLAlchemy 2 (async), services per area. Never imports metal.
"""
