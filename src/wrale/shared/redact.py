"""Secrets out of log lines: ``token=`` (and access/refresh tokens) in URL query strings
become ``[redacted]``. A filter for uvicorn's access and error loggers, which print the
full path of every request and WebSocket handshake; it changes nothing else."""

from __future__ import annotations

import logging
import re

_SECRET_QUERY = re.compile(
    r"(?P<key>(?:^|[?&;])(?:token|access_token|refresh_token)=)[^&;#\s\"']*", re.IGNORECASE
)
REDACTED = "[redacted]"
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact_url(text: str) -> str:
    """``text`` with the value of every token query parameter replaced."""
    return _SECRET_QUERY.sub(lambda m: m.group("key") + REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrites a record's message and string arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_logs() -> None:
    """Install the filter on uvicorn's loggers (once, however often it is called)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
