"""Pieces every layer may use: settings, errors, clocks, logging, policy documents.

Nothing here imports another Wrale layer.
"""
