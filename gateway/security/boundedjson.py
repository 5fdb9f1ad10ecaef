"""JSON parsing with a depth and a size bound, for anything that arrives from outside.

`json.loads` recurses once per nesting level: `[[[[…]]]]` a few thousand deep raises
`RecursionError` (a 500 and a traceback), and a few hundred deep still parses, only to blow up
later in pydantic, `json.dumps` or a plugin walking the value. A signed Slack event, a Discord
interaction or a keyed OpenAI request can carry either (issue 11, item 9). Here the depth is
measured on the raw text before parsing, in time linear in its length whatever it holds, and
anything too deep, too large or not JSON is a `BadRequest` (a 4xx in the caller's own shape).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from gateway.exceptions import BadRequest, PayloadTooLarge

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "check_json_bounds", "loads"]

# Slack blocks nest about 10 deep and OpenAI tool schemas about 20; 64 leaves room for both.
MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = 64 * 1024 * 1024  # the largest body an endpoint may accept

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # left to right, exactly JSON's pairing of escapes
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string ends at the next quote
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def check_json_bounds(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> None:
    """Refuse `data` if it is larger than `max_bytes` or nests arrays and objects deeper than `max_depth`.

    Only the bounds are checked, not the syntax. Raises `PayloadTooLarge` or `BadRequest`.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the JSON document is larger than {max_bytes} bytes")
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return  # can't nest deeper than it has brackets (the common case: no further work)
    # Brackets inside strings don't nest: drop escapes, then strings, then everything but brackets.
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", raw)).translate(None, _NOT_BRACKETS)
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > max_depth:
        raise BadRequest(f"the JSON document nests deeper than {max_depth} levels")


def loads(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """`json.loads` within the bounds of `check_json_bounds`; `BadRequest` for anything else."""
    check_json_bounds(data, max_depth=max_depth, max_bytes=max_bytes)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest("the request body is not valid JSON") from None
