"""Apps' input forms: which input takes the user's text, and endpoints refusing apps that have none.

Pure rules first, then the admin API against a real Dify simulator (real uvicorn)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.dify.models import AppMode
from gateway.records.appform import (
    InputField,
    default_text_input,
    output_moderation,
    parse_form,
    query_input_for,
)
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import Running, admin_headers, live_server, make_settings, running_app

pytestmark = pytest.mark.anyio


def fields(*spec: tuple[str, str, bool]) -> tuple[InputField, ...]:
    return tuple(InputField(name, kind, required) for name, kind, required in spec)


def test_the_default_is_the_one_required_text_input_else_the_first() -> None:
    one_required = fields(("tone", "text-input", False), ("n", "number", True), ("question", "paragraph", True))
    assert default_text_input(one_required) == "question"
    two_required = fields(("a", "select", True), ("b", "text-input", True), ("c", "paragraph", True))
    assert default_text_input(two_required) == "b"
    none_required = fields(("n", "number", False), ("text", "paragraph", False), ("more", "text-input", False))
    assert default_text_input(none_required) == "text"
    assert default_text_input(fields(("n", "number", True), ("f", "file", True))) is None


def test_the_setting_wins_where_the_app_has_it() -> None:
    form = fields(("question", "paragraph", True), ("context", "paragraph", False))
    assert query_input_for(form, None) == "question"
    assert query_input_for(form, "context") == "context"
    assert query_input_for(form, "missing") == "question"  # e.g. another app of a multi-app endpoint
    assert query_input_for(None, "q") == "q" and query_input_for(None, None) == "query"  # form not read


def test_parse_form_and_moderation_flag() -> None:
    form = [
        {"text-input": {"variable": "name", "label": "Name", "required": True, "max_length": 48}},
        {"select": {"variable": "lang", "label": 3, "options": ["en"]}},
        {"paragraph": {"label": "no variable"}},
        "junk",
        {"a": {}, "b": {}},
    ]
    assert parse_form(form) == (InputField("name", "text-input", True, "Name"), InputField("lang", "select", False))
    assert parse_form(None) == ()
    assert output_moderation({"enabled": True, "config": {"outputs_config": {"enabled": True}}})
    assert not output_moderation({"enabled": True, "config": {"outputs_config": {"enabled": False}}})
    assert output_moderation({"enabled": True, "type": "api"})  # no outputs_config: assume it moderates
    assert not output_moderation({"enabled": False}) and not output_moderation(None)


# -- endpoints against the simulator ---------------------------------------------------------------


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_app(make_settings(tmp_path)) as app:
        yield app


async def add_app(running: Running, name: str, url: str, mode: str | None = None) -> dict[str, Any]:
    app = {"name": name, "base_url": f"{url}/v1", "api_key": "app-simulator"} | ({"mode": mode} if mode else {})
    response = await running.client.post("/admin/api/apps", json=app, headers=admin_headers())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create(running: Running, apps: list[str], **settings: Any) -> Any:
    body = {"plugin": "webhook", "apps": apps, "settings": settings}
    return await running.client.post("/admin/api/endpoints", json=body, headers=admin_headers())


@pytest.mark.parametrize("mode", ["workflow", "completion"])
async def test_an_app_without_a_text_input_is_refused_naming_its_inputs(running: Running, mode: AppMode) -> None:
    config = SimulatorConfig(mode=mode, inputs=(("count", "number", True), ("lang", "select", False)))
    async with live_server(create_simulator_app(config)) as simulator:
        added = await add_app(running, "flow", simulator)  # mode detected: the form is read now
        assert added["inputs"] == [
            {"variable": "count", "type": "number", "required": True, "label": "Count"},
            {"variable": "lang", "type": "select", "required": False, "label": "Lang"},
        ]
        refused = await create(running, ["flow"])
        assert refused.status_code == 400
        message = refused.json()["error"]["message"]
        assert f"{mode} app 'flow' has no text input" in message
        assert "its inputs: count (number, required), lang (select)" in message
        # Naming one of its inputs binds it.
        assert (await create(running, ["flow"], query_input="lang")).status_code == 201


async def test_a_query_input_the_app_lacks_is_refused_on_create_and_update(running: Running) -> None:
    config = SimulatorConfig(mode="workflow", inputs=(("question", "paragraph", True),))
    async with live_server(create_simulator_app(config)) as simulator:
        await add_app(running, "flow", simulator, mode="workflow")  # explicit mode: the form is read on create
        refused = await create(running, ["flow"], query_input="qestion")
        assert refused.status_code == 400
        assert (
            "app 'flow' has no input 'qestion' (query_input); its inputs: question (paragraph, required)"
            in (refused.json()["error"]["message"])
        )
        created = await create(running, ["flow"])
        assert created.status_code == 201
        endpoint = created.json()["id"]
        update = await running.client.patch(
            f"/admin/api/endpoints/{endpoint}", json={"settings": {"query_input": "nope"}}, headers=admin_headers()
        )
        assert update.status_code == 400 and "has no input 'nope'" in update.json()["error"]["message"]


async def test_a_chat_app_binds_without_a_text_input(running: Running) -> None:
    async with live_server(create_simulator_app(SimulatorConfig())) as simulator:
        await add_app(running, "chat", simulator)
        assert (await create(running, ["chat"])).status_code == 201


async def test_check_rereads_the_form_and_old_records_read_it_on_first_use(running: Running) -> None:
    config = SimulatorConfig(mode="workflow", inputs=(("question", "paragraph", True),), moderated_words=("x",))
    async with live_server(create_simulator_app(config)) as simulator:
        await add_app(running, "flow", simulator, mode="workflow")
        gateway = running.gateway
        # A record kept before forms were read (no `inputs` key at all) is read when first needed.
        doc = await gateway.store.doc_get("apps", "flow")
        assert doc is not None
        old = {k: v for k, v in doc.items() if k not in ("inputs", "output_moderation")}
        await gateway.store.doc_put("apps", "flow", old)
        record = await gateway.apps.get("flow")
        assert record.inputs is None
        described = await gateway.apps.described(record)
        assert [f.variable for f in described.inputs or ()] == ["question"] and described.output_moderation
        assert (await gateway.apps.get("flow")).inputs == described.inputs  # kept: no call per request
        checked = await running.client.post("/admin/api/apps/flow/check", headers=admin_headers())
        assert checked.status_code == 200
        stats = (await gateway.http.get(f"{simulator}/_sim/stats")).json()
        assert stats["requests_by_path"]["GET /v1/parameters"] == 2
