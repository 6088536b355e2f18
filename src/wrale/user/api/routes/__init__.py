"""Routers of the central API, one module per area, mounted under ``/api/v1``."""
