"""JSON log lines on stdout. Callers pass structured fields; credentials are never passed, and
any field whose name looks secret is masked as a second line of defence."""

from __future__ import annotations

import json
import logging
import sys
import time

_SECRET_WORDS = ("key", "credential", "password", "token", "secret", "auth")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                "logger": record.name, "msg": record.getMessage()}
        for name, value in getattr(record, "fields", {}).items():
            line[name] = "***" if any(w in name.lower() for w in _SECRET_WORDS) else value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)


def fields(**kw: object) -> dict[str, dict[str, object]]:
    """`log.info("msg", extra=fields(trigger=...))`"""
    return {"fields": kw}
