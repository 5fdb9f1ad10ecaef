"""Wire types of the plugin contract: the request a handler sees, the response it gives, and the
verifier's verdict. Framework-neutral: the HTTP edge translates them to and from ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl

from gateway.exceptions import BadRequest
from gateway.security.boundedjson import loads as bounded_loads

__all__ = ["Headers", "Request", "Response", "Verdict"]

# Built once: json.dumps with options builds a new encoder per call, which costs more than encoding `{}`.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_D = TypeVar("_D")


class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued request headers, kept in arrival order.

    Values are latin-1 decoded strings, exactly as received; `get_bytes` gives the original bytes
    for signature checks.
    """

    __slots__ = ("_first", "_raw")

    def __init__(self, raw: Iterable[tuple[str, str]] = ()) -> None:
        self._raw = tuple((name.lower(), value) for name, value in raw)
        first: dict[str, str] = {}
        for name, value in self._raw:
            first.setdefault(name, value)
        self._first = first

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        pairs = tuple((name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw)
        if len(first := dict(pairs)) < len(pairs):  # a repeated name: keep its first value, not its last
            return cls(pairs)
        headers = cls.__new__(cls)  # on every request: the names in arrival order, built in C
        headers._raw = pairs
        headers._first = first
        return headers

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _D) -> str | _D: ...
    def get(self, name: str, /, default: object = None) -> object:
        # Mapping.get goes through __getitem__ and a KeyError for every absent header.
        return self._first.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, name: str) -> list[str]:
        """Every value of a repeated header, in order."""
        lowered = name.lower()
        return [value for key, value in self._raw if key == lowered]

    def get_bytes(self, name: str) -> bytes | None:
        value = self._first.get(name.lower())
        return None if value is None else value.encode("latin-1")

    @property
    def raw(self) -> tuple[tuple[str, str], ...]:
        return self._raw

    def __repr__(self) -> str:
        return f"Headers({list(self._raw)!r})"


@dataclass(frozen=True, slots=True)
class Request:
    """An inbound request to an endpoint, as received.

    `path` is the sub-path below the endpoint URL ("/" for the URL itself); `body` the raw bytes
    (verify before parsing); `query_string` the raw, undecoded query. `verified` is what the
    verifier's `Verdict.ok(verified=…)` handed on (e.g. the decrypted body), so the handler need
    not work it out again; None when the verifier gave nothing or did not run.
    """

    method: str
    path: str
    query_string: str
    headers: Headers
    body: bytes
    endpoint_id: str
    endpoint_url: str
    received_at: float
    client_ip: str | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    verified: Any = field(default=None, repr=False)

    @property
    def query(self) -> list[tuple[str, str]]:
        """The query string parsed into (name, value) pairs, repeats kept."""
        return parse_qsl(self.query_string, keep_blank_values=True)

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the request body is not valid UTF-8") from None

    def json(self) -> Any:
        """The body parsed as JSON; `BadRequest` when it isn't, or nests deeper than 64 levels."""
        return bounded_loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded."""
        pairs = parse_qsl(self.text(), keep_blank_values=True)
        out: dict[str, list[str]] = {}
        for name, value in pairs:
            out.setdefault(name, []).append(value)
        return out


@dataclass(slots=True)
class Response:
    """What a handler answers. `body` may be bytes or an async iterable of bytes (streamed)."""

    status: int = 200
    body: bytes | AsyncIterable[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    media_type: str | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
        body = _JSON.encode(data).encode()
        return cls(status, body, list(headers), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return cls(status, text.encode(), list(headers), "text/plain; charset=utf-8")

    @classmethod
    def empty(cls, status: int = 204, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return cls(status, b"", list(headers))

    @classmethod
    def stream(
        cls,
        chunks: AsyncIterable[bytes],
        media_type: str = "text/event-stream",
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Stream `chunks` as they are produced. For SSE, proxies are told not to buffer."""
        extra = (
            [("cache-control", "no-cache"), ("x-accel-buffering", "no")] if media_type == "text/event-stream" else []
        )
        return cls(status, chunks, [*extra, *headers], media_type)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verifier's decision, recorded in the request log. `status` is ok, failed or skipped.

    `verified` (never logged) is what a passed verification established, given to the handler as
    `Request.verified`: a body decrypted to be verified is not decrypted again.
    """

    status: str
    reason: str = ""
    response: Response | None = None
    verified: Any = field(default=None, repr=False)

    @classmethod
    def ok(cls, verified: Any = None) -> Verdict:
        return cls("ok", verified=verified)

    @classmethod
    def failed(cls, reason: str, response: Response | None = None) -> Verdict:
        """Reject the request; `response` replaces the default 401 JSON error (e.g. an OpenAI error object)."""
        return cls("failed", reason, response)

    @classmethod
    def skipped(cls) -> Verdict:
        return cls("skipped")

    @property
    def passed(self) -> bool:
        return self.status != "failed"
