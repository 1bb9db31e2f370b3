"""JSON (or plain) logs on stderr, level from settings."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str, *, json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "target"},
                timestamp=True,  # ISO 8601 in UTC, sortable across hosts
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    # aiohttp's access log is one line per request: useful at debug, noise at info.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
