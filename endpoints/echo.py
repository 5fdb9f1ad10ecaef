"""The `echo` plugin: answers with what it received. A way to see an endpoint work end to end.

- any method on any sub-path: JSON with the method, sub-path, raw query, headers and body;
- `?chunks=N`: the same JSON streamed in N pieces (shows streaming through the gateway);
- `POST /jobs/{name}`: stores the body under `name` through a durable job; `GET /jobs/{name}` reads it.

With the `token` setting, requests must carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator

from pydantic import BaseModel, Field, SecretStr

from gateway.plugin import (
    ALL_METHODS,
    Context,
    JobInfo,
    NotFound,
    Permission,
    Plugin,
    Request,
    Response,
    Verdict,
)

__all__ = ["EchoSettings", "plugin"]


class EchoSettings(BaseModel):
    greeting: str = Field(default="echo", max_length=200, description="Returned with every answer")
    token: SecretStr | None = Field(
        default=None, min_length=1, description="When set, callers must send it as a bearer token"
    )


async def verify(request: Request, ctx: Context[EchoSettings]) -> Verdict:
    settings = ctx.settings
    if settings.token is None:
        return Verdict.skipped()
    sent = request.headers.get_bytes("authorization") or b""
    expected = b"Bearer " + settings.token.get_secret_value().encode()
    # Digests keep the compare constant-time whatever length was sent.
    if hmac.compare_digest(hashlib.sha256(sent).digest(), hashlib.sha256(expected).digest()):
        return Verdict.ok()
    return Verdict.failed("bad or missing bearer token")


plugin = Plugin(
    "echo",
    settings=EchoSettings,
    verifier=verify,
    permissions={Permission.STORAGE, Permission.JOBS},
    description="Answers with what it received; for trying the gateway out.",
)


def _described(request: Request, ctx: Context[EchoSettings]) -> dict[str, object]:
    try:
        body: str = request.body.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(request.body).decode(), "base64"
    return {
        "greeting": ctx.settings.greeting,
        "endpoint_id": request.endpoint_id,
        "method": request.method,
        "path": request.path,
        "query_string": request.query_string,
        "headers": [[k, "[redacted]" if k == "authorization" else v] for k, v in request.headers.raw],
        "body": body,
        "body_encoding": encoding,
        "body_length": len(request.body),
        "body_sha256": hashlib.sha256(request.body).hexdigest(),
    }


@plugin.route("/jobs/{name}", methods=["POST"])
async def store_later(request: Request, ctx: Context[EchoSettings]) -> Response:
    name = request.path_params["name"]
    job_id = await ctx.jobs.enqueue("store", {"name": name, "value": request.text()}, key=request.headers.get("x-id"))
    return Response.json({"queued": job_id}, status=202)


@plugin.route("/jobs/{name}", methods=["GET"])
async def read_stored(request: Request, ctx: Context[EchoSettings]) -> Response:
    value = await ctx.storage.get("stored:" + request.path_params["name"])
    if value is None:
        raise NotFound("nothing stored under that name yet")
    return Response.json({"value": value})


@plugin.job("store")
async def store(job: JobInfo, ctx: Context[EchoSettings]) -> dict[str, object]:
    await ctx.storage.set("stored:" + job.payload["name"], job.payload["value"])
    return {"stored": job.payload["name"]}


@plugin.route("/{path:path}", methods=ALL_METHODS)
async def echo(request: Request, ctx: Context[EchoSettings]) -> Response:
    described = _described(request, ctx)
    chunks = dict(request.query).get("chunks", "")
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses (a 500).
    if re.fullmatch(r"[0-9]{1,6}", chunks) is None or int(chunks) <= 1:
        return Response.json(described, headers=[("x-echo", "1"), ("x-echo", "2")])
    data = json.dumps(described).encode()
    count = min(int(chunks), 100)
    size = max(1, -(-len(data) // count))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]
            await ctx.clock.sleep(0.01)

    return Response.stream(pieces(), media_type="application/json")
