"""What an app's `GET /parameters` says about its inputs and output moderation (pure).

Workflow and Completion apps take the user's text in an input variable that the app names itself
(`question`, `text`, ...), declared in `user_input_form` (dify-api.md §2.7). An endpoint setting
`query_input` names it; without one the app's own text input is used: the one required
`text-input`/`paragraph`, else the first of them. `sensitive_word_avoidance` tells whether Dify
moderates the output, in which case a streamed answer may be replaced at the end (`message_replace`).
`file_upload` and `system_parameters` say which files the app takes (`FileUpload`): their types,
how they may be sent (uploaded, `local_file`, or by URL, `remote_url`), how many per message and
how large (dify-api.md §2.6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "FILE_TYPES",
    "INPUT_MODES",
    "TEXT_TYPES",
    "FileUpload",
    "InputField",
    "binding_problem",
    "default_text_input",
    "describe_inputs",
    "file_type",
    "file_upload",
    "output_moderation",
    "parse_form",
    "query_input_for",
]

# Apps without a `query` field of their own: the text goes into an input variable.
INPUT_MODES = frozenset({"workflow", "completion"})
TEXT_TYPES = ("text-input", "paragraph")
MAX_FIELDS = 200


@dataclass(frozen=True, slots=True)
class InputField:
    """One variable of the app's input form."""

    variable: str
    type: str
    required: bool = False
    label: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {"variable": self.variable, "type": self.type, "required": self.required, "label": self.label}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> InputField:
        return cls(str(doc["variable"]), str(doc["type"]), bool(doc.get("required")), str(doc.get("label") or ""))


def parse_form(user_input_form: Any) -> tuple[InputField, ...]:
    """`user_input_form` (a list of `{type: {variable, label, required, ...}}`); malformed items skipped."""
    fields: list[InputField] = []
    for item in user_input_form if isinstance(user_input_form, list) else ():
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((kind, spec),) = item.items()
        variable = spec.get("variable") if isinstance(spec, dict) else None
        if not isinstance(kind, str) or not isinstance(variable, str) or not variable:
            continue
        label = spec.get("label")
        fields.append(InputField(variable, kind, spec.get("required") is True, label if isinstance(label, str) else ""))
    return tuple(fields[:MAX_FIELDS])


def output_moderation(sensitive_word_avoidance: Any) -> bool:
    """Whether Dify moderates the app's output. Enabled moderation without an `outputs_config`
    counts as moderating: buffering a few answers needlessly beats leaking moderated text."""
    if not isinstance(sensitive_word_avoidance, dict) or sensitive_word_avoidance.get("enabled") is not True:
        return False
    config = sensitive_word_avoidance.get("config")
    outputs = config.get("outputs_config") if isinstance(config, dict) else None
    if isinstance(outputs, dict) and "enabled" in outputs:
        return outputs.get("enabled") is True
    return True


def default_text_input(fields: Sequence[InputField]) -> str | None:
    """The app's text input: the one required text-input/paragraph, else the first of them."""
    texts = [f for f in fields if f.type in TEXT_TYPES]
    required = [f for f in texts if f.required]
    if len(required) == 1:
        return required[0].variable
    return texts[0].variable if texts else None


def query_input_for(fields: Sequence[InputField] | None, setting: str | None) -> str:
    """The variable that receives the text: `setting` when the app has it (or its form is not
    known), else the app's text input; "query" when neither says (Dify's legacy name)."""
    if setting and (fields is None or any(f.variable == setting for f in fields)):
        return setting
    return (default_text_input(fields) if fields is not None else None) or setting or "query"


def describe_inputs(fields: Sequence[InputField]) -> str:
    """The form as one line for error messages: `question (paragraph, required), lang (select)`."""
    if not fields:
        return "no inputs at all"
    return ", ".join(f"{f.variable} ({f.type}{', required' if f.required else ''})" for f in fields)


def binding_problem(app: str, mode: str, fields: Sequence[InputField] | None, setting: str | None) -> str | None:
    """Why a Workflow/Completion app can't take the user's text on an endpoint, or None when it can.

    An app whose form is unknown (Dify was not reachable) passes: the text then goes to `setting`
    or "query", and Dify says what is missing.
    """
    if mode not in INPUT_MODES or fields is None:
        return None
    if setting and not any(f.variable == setting for f in fields):
        return (
            f"app {app!r} has no input {setting!r} (query_input); its inputs: {describe_inputs(fields)}. "
            "Set query_input to one of them, or leave it out to use the app's text input"
        )
    if not setting and default_text_input(fields) is None:
        return (
            f"{mode} app {app!r} has no text input to put the user's message in; its inputs: "
            f"{describe_inputs(fields)}. Add a text or paragraph input to the app in Dify "
            "(then run `dify-gateway apps check`), or name one with the query_input setting"
        )
    return None


# -- files ----------------------------------------------------------------------------------------

# Dify's file types and the extensions it sorts into them (langgenius/dify api/constants/__init__.py);
# anything else is "custom", accepted only where the app lists its extension.
FILE_TYPES = ("image", "document", "audio", "video", "custom")
_EXTENSIONS = {
    "image": frozenset({"jpg", "jpeg", "png", "webp", "gif", "svg"}),
    "video": frozenset({"mp4", "mov", "mpeg", "webm"}),
    "audio": frozenset({"mp3", "m4a", "wav", "amr", "mpga"}),
    "document": frozenset(
        {"txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "vtt", "properties", "doc", "docx"}
        | {"csv", "eml", "msg", "pptx", "ppt", "xml", "epub"}
    ),
}
# system_parameters keys (MB) per type; documents and custom files share `file_size_limit`.
_SIZE_KEYS = {
    "image": "image_file_size_limit",
    "audio": "audio_file_size_limit",
    "video": "video_file_size_limit",
    "document": "file_size_limit",
    "custom": "file_size_limit",
}
METHODS = ("local_file", "remote_url")
MB = 1024 * 1024


def _extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def file_type(name: str, mime_type: str = "") -> str | None:
    """Dify's type of a file named `name` (its extension first, then its MIME type), or None when
    it is none of image/document/audio/video (a "custom" file at best)."""
    extension = _extension(name)
    for kind, extensions in _EXTENSIONS.items():
        if extension in extensions:
            return kind
    major = mime_type.split("/", 1)[0].lower()
    if major in ("image", "audio", "video"):
        return major
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


@dataclass(frozen=True, slots=True)
class FileUpload:
    """The files an app accepts (its `GET /parameters`); `FileUpload()` takes none.

    `types`: Dify file types (`FILE_TYPES`); `extensions`: those of "custom" files (lower case,
    no dot); `methods`: `local_file` (uploaded through the gateway) and/or `remote_url`;
    `number_limit`: files per message; `size_limits`: (type, bytes) pairs.
    """

    enabled: bool = False
    types: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    number_limit: int | None = None
    size_limits: tuple[tuple[str, int], ...] = ()

    def max_bytes(self, kind: str) -> int | None:
        """The app's size limit for files of `kind`, when Dify said one."""
        return dict(self.size_limits).get(kind)

    def check(self, app: str, *, kind: str | None, label: str, extension: str = "", method: str, size: int = 0) -> str:
        """The Dify type to send a file as (`kind`, or "custom" for a listed extension).

        `label` names the file's type in messages (its MIME type, say). Raises `BadRequest` when
        the app takes no files or not by `method`, `UnsupportedMediaType` naming the type it
        refuses, `PayloadTooLarge` past its size limit.
        """
        if not self.enabled or not self.types:
            raise BadRequest(f"app {app!r} does not accept files (file upload is off in its Dify settings)")
        if self.methods and method not in self.methods:
            how = "uploaded files only" if method == "remote_url" else "files by URL only"
            raise BadRequest(f"app {app!r} accepts {how}")
        extension = extension.lower().lstrip(".")
        if kind is not None and kind in self.types:
            sent = kind
        elif "custom" in self.types and extension and extension in self.extensions:
            sent = "custom"
        else:
            custom = "custom (" + ", ".join(self.extensions) + ")"
            accepted = ", ".join(custom if t == "custom" else t for t in self.types)
            raise UnsupportedMediaType(f"app {app!r} does not accept {label} files; it accepts {accepted}")
        limit = self.max_bytes(sent)
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"the {label} file is {size} bytes; app {app!r} accepts at most {limit} bytes")
        return sent

    def to_doc(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "types": list(self.types),
            "extensions": list(self.extensions),
            "methods": list(self.methods),
            "number_limit": self.number_limit,
            "size_limits": {kind: size for kind, size in self.size_limits},
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> FileUpload:
        sizes = doc.get("size_limits") or {}
        return cls(
            bool(doc.get("enabled")),
            tuple(doc.get("types") or ()),
            tuple(doc.get("extensions") or ()),
            tuple(doc.get("methods") or ()),
            doc.get("number_limit"),
            tuple((str(kind), int(size)) for kind, size in sizes.items()),
        )


def file_upload(parameters: Mapping[str, Any]) -> FileUpload:
    """The files an app accepts, from its `GET /parameters` answer (malformed parts ignored).

    Newer Dify sends `file_upload.{enabled, allowed_file_types, allowed_file_extensions,
    allowed_file_upload_methods, number_limits}`; older apps only `file_upload.image.{enabled,
    transfer_methods, number_limits}` (images only). Size limits (MB) come from `system_parameters`.
    """
    config = _object(parameters.get("file_upload"))
    image = _object(config.get("image"))
    if "enabled" in config or "allowed_file_types" in config:
        enabled = config.get("enabled") is True
        types = tuple(t for t in _strings(config.get("allowed_file_types")) if t in FILE_TYPES)
        methods = _strings(config.get("allowed_file_upload_methods")) or _strings(image.get("transfer_methods"))
        limit = config.get("number_limits")
    else:
        enabled = image.get("enabled") is True
        types = ("image",) if enabled else ()
        methods = _strings(image.get("transfer_methods"))
        limit = image.get("number_limits")
    extensions = tuple(e.lower().lstrip(".") for e in _strings(config.get("allowed_file_extensions")))
    system = _object(parameters.get("system_parameters"))
    sizes = []
    for kind, key in _SIZE_KEYS.items():
        value = system.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            sizes.append((kind, int(value * MB)))
    return FileUpload(
        enabled=enabled and bool(types),
        types=types if enabled else (),
        extensions=extensions,
        methods=tuple(m for m in methods if m in METHODS),
        number_limit=limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None,
        size_limits=tuple(sizes),
    )
