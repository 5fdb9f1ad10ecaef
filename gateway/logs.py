"""The process's logging: text or JSON lines that can't be forged and never carry a URL's secrets.

`configure_logging` is called once by `dify-gateway serve` (and the bot command); uvicorn is told
not to install its own handlers, so its lines go through the same formatter. Three rules hold
for every record, whoever logged it and with whatever arguments (issue 11, items 7 and 8):

- **One record, one line.** Control characters in the message and its arguments (CR, LF, ESC,
  DEL, C1, Unicode line separators, bidi overrides) are written as escapes, so a request path
  like `/x%0a2026-01-01 … ERROR gateway.admin: FORGED` can't start a line of its own. Traceback
  lines are indented, so none of them can pass for a record either. `GATEWAY_LOG_FORMAT=json`
  writes one JSON object per line instead.
- **No URL secrets.** Every `http(s)://` or `ws(s)://` URL in a record keeps its scheme, host
  and port; its path keeps only word-like segments (`/api/v10/webhooks/…/…/messages/@original`),
  an endpoint URL's token becomes its short hash (`/e/3fa1b2c4…`), and a query or fragment
  becomes `?…`. Discord interaction tokens, Slack `response_url`s, callback URLs and endpoint
  URLs therefore never reach the log at any level.
- **Quiet HTTP clients.** httpx logs each outbound request at INFO; that line (already
  redacted) is kept for DEBUG only. httpcore's and hpack's wire traces (response headers
  included) are never written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlsplit

from gateway.security.tokens import redact_path

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "escape_controls",
    "redact_url",
    "redact_urls",
]

LOG_FORMATS = ("text", "json")
TRACE = 5  # uvicorn's `trace` level

# C0, DEL, C1, Unicode line and paragraph separators, and bidi controls (which reorder what a
# reader sees): each written as a visible escape.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROLS: dict[int, str] = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}") for code in (*range(0x20), *range(0x7F, 0xA0))
}
_CONTROLS |= {
    code: f"\\u{code:04x}"
    for code in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}
# In JSON output the C0 controls are escaped by json.dumps; these are not, and are valid escapes.
_JSON_EXTRA = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F}

_URL = re.compile(r"\b(?:https?|wss?)://[^\s\"'<>`]+", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z@][A-Za-z._@-]{0,19}|v\d{1,2}")  # an API word, never a token
_HTTP_CLIENT_TRACES = ("httpcore", "hpack")


def escape_controls(text: str) -> str:
    """`text` with every control and line-breaking character written as an escape."""
    return text.translate(_CONTROLS)


def redact_url(url: str) -> str:
    """`scheme://host:port` and the path's word-like segments; tokens, query and fragment replaced by `…`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is not a number, a broken IPv6 literal: keep nothing
        return f"{url.partition('://')[0]}://…"
    if ":" in host:
        host = f"[{host}]"
    if parts.path.startswith("/e/"):
        path = redact_path(parts.path)
    else:
        path = "/".join(s if not s or _WORD.fullmatch(s) else "…" for s in parts.path.split("/"))
    rest = "?…" if parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{path}{rest}"


def redact_urls(text: str) -> str:
    """Every URL inside `text` through `redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match.group()), text)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, one line per record; a traceback follows on indented lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message = escape_controls(redact_urls(record.getMessage()))
        line = f"{self.formatTime(record, self.datefmt)} {record.levelname} {escape_controls(record.name)}: {message}"
        details = _details(self, record)
        if details:
            line += "".join("\n    " + escape_controls(redact_urls(part)) for part in details.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (ISO 8601, UTC), `level`, `logger`, `message`, and
    `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_urls(record.getMessage()),
        }
        details = _details(self, record)
        if details:
            document["exception"] = redact_urls(details)
        return json.dumps(document, ensure_ascii=False).translate(_JSON_EXTRA)


def _details(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


def configure_logging(level: str = "info", log_format: str = "text", stream: TextIO | None = None) -> None:
    """Send every logger's records to `stream` (stderr) through the safe formatter, at `level`.

    Replaces whatever handlers the root logger had. `level` is a logging level name (or
    uvicorn's `trace`); `log_format` is `text` or `json`.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    logging.addLevelName(TRACE, "TRACE")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # httpx's "HTTP Request: …" line for every outbound call is debugging detail, not news.
    logging.getLogger("httpx").setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING)
    for name in _HTTP_CLIENT_TRACES:
        logging.getLogger(name).setLevel(logging.WARNING)
