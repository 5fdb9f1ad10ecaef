"""The plugin contract: the one package plugin authors import (`from gateway.plugin import ...`).

A plugin is a `Plugin` value found through the `dify_gateway.plugins` entry-point group. It
declares a name, a pydantic settings model (fields typed `SecretStr` are encrypted at rest and
masked on read), the permissions it needs, a verifier, routes below the endpoint URL and job
handlers. It is typed by its settings model, and so is the `Context` its handlers get::

    from pydantic import BaseModel, SecretStr
    from gateway.plugin import Context, JobInfo, Permission, Plugin, Request, Response, Verdict

    class Settings(BaseModel):
        signing_secret: SecretStr

    async def verify(request: Request, ctx: Context[Settings]) -> Verdict:
        ...  # check a signature over request.body with ctx.settings.signing_secret
        return Verdict.ok()

    plugin = Plugin("mine", settings=Settings, permissions={Permission.JOBS}, verifier=verify)

    @plugin.route("/events", methods=["POST"])
    async def events(request: Request, ctx: Context[Settings]) -> Response:
        await ctx.jobs.enqueue("answer", {"text": request.json()["text"]}, key=request.headers.get("x-id"))
        return Response.json({"ok": True})

    @plugin.job("answer", secrets=("reply_url",))
    async def answer(job: JobInfo, ctx: Context[Settings]) -> None:
        await job.fence()  # before every write to the outside: raises LeaseLost once another run took over
        ...

The parts, one concept each (this module only re-exports them):

- `wire`: `Request` (raw body bytes, raw query string, multi-valued `Headers`), `Response`
  (whose body may be an async iterator, streamed as produced) and the verifier's `Verdict`;
- `context`: the `Context` protocol and what it opens (`Apps`, `Storage`, `Jobs`, `Callbacks`),
  gated by `Permission`;
- `streams`: `AnswerStream`, a streamed Dify answer as a protocol (the contract loads neither
  httpx nor the Dify client);
- `jobs`: `JobInfo` and its `Lease`, `JobStatus`, `JobRun` (a handler's signals, `RetryJob` and
  `JobError`, are in the exception tree);
- `routing`: `Plugin`, its routes, jobs and operator actions;
- `settings`: helpers for settings models (`query_input_setting`).

Re-exported from the gateway's own modules: the signature checks of the platforms (Slack,
Discord, Standard Webhooks, HMAC) as pure functions, the helpers of chat plugins
(`gateway.delivery.chat.text`: the edit throttle, fence-aware message splitting;
`gateway.retry_after`: the one `Retry-After` reader), the chat-delivery engine
(`gateway.delivery.chat`: a platform's `ChatAdapter` and `ChatRules`, `deliver`), structured
output (`enforce`), the exceptions (`RetryJob` and `JobError` among them) and `Clock`, so a
plugin needs nothing else from the gateway.
"""

from gateway.clock import Clock
from gateway.delivery.chat import (
    AnswerSource,
    ChatAdapter,
    ChatRules,
    Delivered,
    Draft,
    Fence,
    Handover,
    KeyValue,
    MemoryMessages,
    MessageRef,
    NativeStream,
    PostedKind,
    PostedMessage,
    PostedMessages,
    ResumableStream,
    Said,
    StoredMessages,
    StreamUnavailable,
    default_failure_note,
    deliver,
    failure_code,
    repeating,
    said,
)
from gateway.delivery.chat.text import (
    FENCE,
    EditThrottle,
    as_text,
    backoff_seconds,
    cut_point,
    hide_reasoning,
    last_break,
    open_fence,
    split_text,
)
from gateway.dify.models import Answer, Delta
from gateway.dify.structured import (
    NO_FALLBACK,
    Structured,
    enforce,
    extract_json,
    problems,
    schema_error,
    schema_instruction,
)
from gateway.exceptions import (
    BadRequest,
    BudgetExceeded,
    ConfigurationError,
    GatewayError,
    JobError,
    LockBusy,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RetryJob,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamError,
)
from gateway.plugin.claims import claim
from gateway.plugin.context import (
    AppInfo,
    Apps,
    Callbacks,
    Context,
    EndpointInfo,
    HeldLock,
    Jobs,
    Permission,
    Storage,
    UploadedFile,
)
from gateway.plugin.jobs import JobInfo, JobRun, JobStatus, Lease, LeaseLost
from gateway.plugin.memory import Memory
from gateway.plugin.routing import (
    ALL_METHODS,
    Action,
    ActionHandler,
    ActionResult,
    Handler,
    JobHandler,
    Plugin,
    Route,
    Verifier,
    unverified,
)
from gateway.plugin.settings import query_input_setting
from gateway.plugin.streams import AnswerStream
from gateway.plugin.wire import Headers, Request, Response, Verdict
from gateway.records.appform import FileUpload, file_type
from gateway.retry_after import retry_after_header, retry_after_seconds
from gateway.security.addresses import private_url_host
from gateway.security.signatures import (
    Ed25519Key,
    check_timestamp,
    new_webhook_secret,
    parse_ed25519_public_key,
    parse_webhook_secret,
    sign_standard_webhook,
    slack_signature,
    standard_webhook_headers,
    verify_discord,
    verify_ed25519,
    verify_hmac_hex,
    verify_slack,
    verify_standard_webhook,
)

__all__ = [
    "ALL_METHODS",
    "Action",
    "ActionHandler",
    "ActionResult",
    "Answer",
    "AnswerSource",
    "AnswerStream",
    "AppInfo",
    "Apps",
    "BadRequest",
    "BudgetExceeded",
    "Callbacks",
    "ChatAdapter",
    "ChatRules",
    "Clock",
    "ConfigurationError",
    "Context",
    "Delivered",
    "Delta",
    "Draft",
    "Ed25519Key",
    "EditThrottle",
    "EndpointInfo",
    "FENCE",
    "Fence",
    "FileUpload",
    "GatewayError",
    "Handler",
    "Handover",
    "Headers",
    "HeldLock",
    "JobError",
    "JobHandler",
    "JobInfo",
    "JobRun",
    "JobStatus",
    "Jobs",
    "KeyValue",
    "Lease",
    "LeaseLost",
    "LockBusy",
    "Memory",
    "MemoryMessages",
    "MessageRef",
    "NO_FALLBACK",
    "NativeStream",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "Permission",
    "PermissionDenied",
    "Plugin",
    "PostedKind",
    "PostedMessage",
    "PostedMessages",
    "RateLimited",
    "Request",
    "Response",
    "ResumableStream",
    "RetryJob",
    "Route",
    "Said",
    "Storage",
    "StoredMessages",
    "StreamUnavailable",
    "Structured",
    "Unauthorized",
    "UnsupportedMediaType",
    "UploadedFile",
    "UpstreamError",
    "Verdict",
    "Verifier",
    "as_text",
    "backoff_seconds",
    "check_timestamp",
    "claim",
    "cut_point",
    "default_failure_note",
    "deliver",
    "enforce",
    "extract_json",
    "failure_code",
    "file_type",
    "hide_reasoning",
    "last_break",
    "new_webhook_secret",
    "open_fence",
    "parse_ed25519_public_key",
    "parse_webhook_secret",
    "private_url_host",
    "problems",
    "query_input_setting",
    "repeating",
    "retry_after_header",
    "retry_after_seconds",
    "said",
    "schema_error",
    "schema_instruction",
    "sign_standard_webhook",
    "slack_signature",
    "split_text",
    "standard_webhook_headers",
    "unverified",
    "verify_discord",
    "verify_ed25519",
    "verify_hmac_hex",
    "verify_slack",
    "verify_standard_webhook",
]
