"""user.api: the central REST + WebSocket API (FastAPI), built by ``create_app(settings)``."""
