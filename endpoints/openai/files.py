"""Images and files in OpenAI requests, and how they reach the Dify app.

Parts (parsed here, one implementation for every route):

- chat `image_url` (`{"url"}` or a bare string) and responses `input_image` (`image_url`):
  an http(s) URL or a `data:` URL;
- chat `file` (`{"file": {"file_data", "filename"}}`) and responses `input_file`
  (`file_data`, `file_url`, `filename`): inline data (a `data:` URL, or bare base64 named by
  `filename`) or an http(s) URL. `file_id` (OpenAI's Files API) is refused: nothing is stored here.

Only the last user message's files go to Dify (`dify_files`): inline data is decoded (at most
the endpoint's `max_file_bytes`, counted before decoding) and uploaded with `ctx.apps.upload`
under the answer's Dify user, then sent as `local_file`; URLs go as `remote_url` (the gateway
never fetches them). Both are checked first against what the app accepts (its `file_upload`
in `GET /parameters`, kept on the app's record): an app without file upload, a type it refuses
or a file past its limits is a 400/413 naming the part, never a silently dropped file.
"""

from __future__ import annotations

import binascii
import hashlib
import mimetypes
from base64 import b64decode
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from endpoints.openai.errors import OpenAIError
from endpoints.openai.settings import OpenAISettings
from gateway.plugin import BadRequest, Context, PayloadTooLarge, UnsupportedMediaType, file_type, private_url_host

__all__ = ["Attachment", "dify_files", "file_part", "image_part", "web_url"]

# Python's own table, not the machine's /etc/mime.types: the same names everywhere.
_TYPES = mimetypes.MimeTypes(filenames=())
_SPACE = str.maketrans("", "", " \t\r\n")


def _bad(message: str, param: str, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def web_url(url: str) -> bool:
    """An http(s) URL with a host (False for anything urlsplit refuses, e.g. "https://[::1")."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _public_url(url: str, param: str) -> str:
    """`url`, unless its host can only be inside a network: Dify downloads it, from wherever Dify
    runs (cloud metadata, the Dify API's own neighbours), so such URLs never leave the gateway."""
    host = private_url_host(url)
    if host is not None:
        raise _bad(f"{param} must point to a public host, not {host[:64]!r}", param, "invalid_url")
    return url


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file of a message: `url` is an http(s) URL (sent by URL) or a `data:` URL (uploaded).

    `kind` is "image" for image parts, "file" for file parts; `param` locates the part in the
    request (for errors); `key` identifies the content in history fingerprints (the URL, or a
    digest of inline data).
    """

    url: str
    kind: str
    param: str
    filename: str | None = None
    key: str = ""

    @classmethod
    def of(cls, url: str, kind: str, param: str, filename: str | None = None) -> Attachment:
        key = "sha256:" + hashlib.sha256(url.encode("utf-8", "replace")).hexdigest() if _inline(url) else url
        return cls(url, kind, param, filename, key)

    @property
    def inline(self) -> bool:
        return _inline(self.url)

    @property
    def label(self) -> str:
        """How a transcript shows it: `[image: https://...]`, `[image]`, `[file: report.pdf]`."""
        shown = self.filename or ("" if self.inline else self.url)
        return f"[{self.kind}: {shown}]" if shown else f"[{self.kind}]"


def _inline(url: str) -> bool:
    return url[:5].lower() == "data:"


def _data_url(url: str, param: str) -> str:
    if "," not in url:
        raise _bad("a data: URL needs a comma before its data (data:<type>;base64,<data>)", param)
    return url  # its media type is checked by the upload (`ctx.apps.upload`)


def image_part(value: Any, param: str) -> Attachment:
    """An image: an http(s) URL or a `data:` URL (`value` is the URL, or `{"url": ...}`)."""
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise _bad("image_url needs a url", param)
    if _inline(url):
        return Attachment.of(_data_url(url, param), "image", param)
    if not web_url(url):
        raise _bad("image URLs must be http(s) or data: URLs", param)
    return Attachment.of(_public_url(url, param), "image", param)


def file_part(part: dict[str, Any], param: str) -> Attachment:
    """A file from `file_data` (a `data:` URL, or base64 named by `filename`) or `file_url`."""
    filename = part.get("filename")
    if filename is not None and (not isinstance(filename, str) or not 0 < len(filename) <= 255):
        raise _bad("filename must be a non-empty string of at most 255 characters", f"{param}.filename")
    name = filename.replace("/", "_").replace("\\", "_") if filename else None
    data, url = part.get("file_data"), part.get("file_url")
    if isinstance(data, str) and data:
        if _inline(data):
            return Attachment.of(_data_url(data, f"{param}.file_data"), "file", f"{param}.file_data", name)
        if not name:
            raise _bad("file_data without a data: URL needs a filename (its type comes from it)", f"{param}.filename")
        mime = _TYPES.guess_type(name, strict=False)[0] or "application/octet-stream"
        return Attachment.of(f"data:{mime};base64,{data}", "file", f"{param}.file_data", name)
    if isinstance(url, str) and url:
        if not web_url(url):
            raise _bad("file_url must be an http(s) URL", f"{param}.file_url")
        return Attachment.of(_public_url(url, f"{param}.file_url"), "file", f"{param}.file_url", name)
    if part.get("file_id") is not None:
        raise _bad(
            "file_id is not supported (no Files API here): send the file inline as file_data",
            f"{param}.file_id",
            "unsupported_parameter",
        )
    raise _bad("a file part needs file_data (a data: URL or base64) or file_url", param)


# -- to Dify ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Decoded:
    content: bytes
    mime_type: str
    name: str


def _decode(attachment: Attachment, limit: int) -> _Decoded:
    """The bytes of an inline attachment; 413 past `limit` (checked before decoding), 400 when malformed."""
    header, _, data = attachment.url.partition(",")
    fields = [f.strip() for f in header[5:].split(";")]
    mime = (fields[0] or "text/plain").lower()
    encoded = any(f.lower() == "base64" for f in fields[1:])
    if encoded:
        data = data.translate(_SPACE)
        size = len(data) * 3 // 4 - data[-2:].count("=")
    else:
        size = len(data)  # percent-encoded: never more bytes than characters
    if size > limit:
        raise _too_large(attachment, limit)
    try:
        content = b64decode(data, validate=True) if encoded else unquote_to_bytes(data)
    except (binascii.Error, ValueError):
        raise _bad("the data: URL is not valid base64", attachment.param) from None
    if len(content) > limit:
        raise _too_large(attachment, limit)
    if not content:
        raise _bad("the file is empty", attachment.param)
    name = attachment.filename or attachment.kind + (_TYPES.guess_extension(mime, strict=False) or "")
    return _Decoded(content, mime, name)


def _too_large(attachment: Attachment, limit: int) -> OpenAIError:
    return OpenAIError(
        413,
        f"the {attachment.kind} is larger than this endpoint accepts ({limit} bytes)",
        param=attachment.param,
        code="file_too_large",
    )


def _refused(exc: BadRequest | UnsupportedMediaType | PayloadTooLarge, param: str) -> OpenAIError:
    if isinstance(exc, PayloadTooLarge):
        return OpenAIError(413, exc.message, param=param, code="file_too_large")
    if isinstance(exc, UnsupportedMediaType):
        return _bad(exc.message, param, "unsupported_file_type")
    return _bad(exc.message, param, "invalid_file")


def _remote_type(attachment: Attachment) -> tuple[str | None, str, str]:
    """(Dify type, label, extension) of a file sent by URL; image parts are images whatever the URL says."""
    path = urlsplit(attachment.url).path
    name = attachment.filename or path.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if attachment.kind == "image":
        return "image", "image", extension
    return file_type(name), f".{extension}" if extension else "untyped", extension


async def dify_files(
    ctx: Context[OpenAISettings], app: str, attachments: Sequence[Attachment], *, user: str, settings: OpenAISettings
) -> list[dict[str, Any]]:
    """The `files` of a Dify call for `attachments`: inline ones uploaded under `user` (the
    answer's Dify user), URLs passed on; 400/413 (naming the part) when the app can't take them."""
    if not attachments:
        return []
    accepts = (await ctx.apps.describe(app)).files
    if accepts is not None and accepts.number_limit is not None and len(attachments) > accepts.number_limit:
        extra = attachments[accepts.number_limit]
        raise _bad(f"app {app!r} accepts at most {accepts.number_limit} files per message", extra.param, "invalid_file")
    files: list[dict[str, Any]] = []
    for attachment in attachments:
        try:
            if attachment.inline:
                decoded = _decode(attachment, settings.max_file_bytes)
                uploaded = await ctx.apps.upload(
                    decoded.content, name=decoded.name, mime_type=decoded.mime_type, user=user, app=app
                )
                files.append(uploaded.as_input())
                continue
            kind, label, extension = _remote_type(attachment)
            if accepts is not None:
                kind = accepts.check(app, kind=kind, label=label, extension=extension, method="remote_url")
            files.append({"type": kind or "custom", "transfer_method": "remote_url", "url": attachment.url})
        except (BadRequest, UnsupportedMediaType, PayloadTooLarge) as exc:
            raise _refused(exc, attachment.param) from None
    return files
