"""Operations the admin API and the CLI share that span more than one service.

Each takes the collaborators it needs (from the `Gateway` container), so the API handler and the
command stay one call each and the rules live in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.exceptions import BadRequest, NotFound
from gateway.host.context_factory import ContextFactory
from gateway.host.registry import PluginRegistry
from gateway.plugin import ActionResult
from gateway.records.apps import AppService
from gateway.records.endpoints import EndpointRecord, EndpointService
from gateway.records.requestlog import RequestLog
from gateway.storage.base import Store

__all__ = ["delete_endpoint", "remove_app", "reseal_secrets", "run_action"]


async def remove_app(name: str, *, apps: AppService, endpoints: EndpointService) -> None:
    """Remove an app, refusing while endpoints are bound to it."""
    bound = [e.id for e in await endpoints.all() if name in e.apps]
    await apps.remove(name, bound_to=bound)


async def delete_endpoint(
    endpoint_id: str, *, endpoints: EndpointService, requests: RequestLog, store: Store
) -> EndpointRecord:
    """Delete an endpoint with its request log and its plugin storage."""
    record = await endpoints.delete(endpoint_id)
    await requests.drop(record.id)
    await store.kv_delete_prefix(f"kv:{record.id}:")
    return record


async def reseal_secrets(*, apps: AppService, endpoints: EndpointService) -> dict[str, Any]:
    """After a new GATEWAY_SECRET_KEY was added (newest last): re-encrypt every stored secret
    under it, and list the endpoints whose URL is still signed with an older key."""
    resealed = [app.name for app in await apps.all() if await apps.reseal(app.name)]
    values, stale_urls = 0, []
    for record in await endpoints.all():
        changed, stale = await endpoints.reseal(record.id)
        values += changed
        if stale:
            stale_urls.append(record.id)
    return {"apps_resealed": resealed, "endpoint_values_resealed": values, "endpoints_to_rotate": stale_urls}


async def run_action(
    endpoint_id: str,
    name: str,
    args: Mapping[str, str],
    *,
    endpoints: EndpointService,
    registry: PluginRegistry,
    contexts: ContextFactory,
) -> str | dict[str, Any] | ActionResult:
    """Run the plugin action `name` on an endpoint (CLI `dify-gateway PLUGIN ACTION ID`, admin API)."""
    record = await endpoints.get(endpoint_id)
    plugin = registry.require(record.plugin)
    action = plugin.actions.get(name)
    if action is None:
        raise NotFound(f"plugin {plugin.name!r} has no action {name!r}")
    unknown = set(args) - set(action.options) - set(action.flags)
    if unknown:
        raise BadRequest(f"unknown options for {name}: {', '.join(sorted(unknown))}")
    not_flags = sorted(flag for flag in action.flags if args.get(flag, "false") not in ("true", "false"))
    if not_flags:
        raise BadRequest(f'{", ".join(not_flags)} of {name} must be "true" or "false"')
    return await action.handler(await contexts.build(record, plugin), args)
