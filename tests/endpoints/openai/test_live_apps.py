"""The openai plugin end to end, continued: key actions, workflow/completion/agent apps as
models, and the broadcast model (the real `openai` SDK, real uvicorn, the Dify simulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gateway.dify.models import AppMode
from gateway.simulator.config import SimulatorConfig
from tests.endpoints.openai.stack import FAST, openai_stack, with_outputs
from tests.support.gateway import admin_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]


def ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


async def test_keys_are_added_listed_and_revoked_through_actions(tmp_path: Path) -> None:
    async with openai_stack(tmp_path, {"support": FAST, "coder": FAST}) as stack:
        assert stack.endpoint["hint"] == f"OpenAI base URL: {stack.base_url}"
        assert stack.endpoint["settings"]["api_key"].startswith("sha256:")  # only the hash is kept
        assert stack.key not in str(stack.endpoint["settings"])
        added = await stack.action("add-key", label="ci")
        limited = await stack.action("add-key", label="coder only", models="coder")
        assert added["key"].startswith("sk-dgw-") and added["id"].startswith("key_")
        listed = await stack.action("list-keys")
        assert [k["label"] for k in listed["keys"]] == ["initial", "ci", "coder only"]
        assert all("key" not in k and "sha256" not in k for k in listed["keys"])
        async with stack.client(key=added["key"]) as client:
            answer = await client.chat.completions.create(model="support", messages=ask("hi"))
            assert answer.choices[0].message.content == "You said: hi"
        async with stack.client(key=limited["key"]) as client:
            assert [m.id for m in (await client.models.list()).data] == ["coder"]
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model="support", messages=ask("hi"))
        assert await stack.action("revoke-key", **{"key-id": added["id"]}) == {"revoked": added["id"]}
        async with stack.client(key=added["key"]) as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
        initial_id = listed["keys"][0]["id"]
        await stack.action("revoke-key", **{"key-id": initial_id})
        async with stack.client() as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
        missing = await stack.http.post(
            f"{stack.gateway}/admin/api/endpoints/{stack.endpoint_id}/actions/revoke-key",
            json={"args": {"key-id": initial_id}},
            headers=admin_headers(),
        )
        assert missing.status_code == 404
        assert [k["label"] for k in (await stack.action("list-keys"))["keys"]] == ["coder only"]
        bodies = await stack.generation_bodies()
    assert bodies[0]["user"] == f"openai:{added['id']}:default"


async def test_workflow_and_completion_apps_are_models(tmp_path: Path) -> None:
    apps = {
        "flow": SimulatorConfig(mode="workflow", **_fast()),
        "writer": SimulatorConfig(mode="completion", **_fast()),
    }
    system: ChatCompletionMessageParam = {"role": "system", "content": "Formal."}
    async with openai_stack(tmp_path, apps) as stack, stack.client() as client:
        for model in ("flow", "writer"):
            blocking = await client.chat.completions.create(model=model, messages=[system, *ask("draft a memo")])
            assert blocking.choices[0].message.content == "You said: Formal. draft a memo"
            stream = await client.chat.completions.create(
                model=model, messages=ask("draft"), stream=True, stream_options={"include_usage": True}
            )
            chunks = [c async for c in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: draft"
            assert chunks[-1].choices == []
            # A workflow reports only total_tokens: usage stays null rather than invented.
            assert (chunks[-1].usage is None) == (model == "flow")
            assert (blocking.usage is None) == (model == "flow")
            body = (await stack.generation_bodies(model))[0]
            assert body["inputs"] == {"query": "Formal.\n\ndraft a memo"} and "query" not in body
            assert (
                "conversation_id"
                not in (
                    await client.chat.completions.with_raw_response.create(model=model, messages=ask("x"))
                ).http_response.json()
            )


async def test_workflow_output_setting_picks_the_answer(tmp_path: Path) -> None:
    apps = {"flow": SimulatorConfig(mode="workflow", inputs=(("question", "paragraph", True),), **_fast())}
    async with (
        openai_stack(tmp_path, apps, {"workflow_output": "text", "query_input": "question"}) as stack,
        stack.client() as client,
    ):
        answer = await client.chat.completions.create(model="flow", messages=ask("hello"))
        assert answer.choices[0].message.content == "You said: hello"
        assert (await stack.generation_bodies("flow"))[0]["inputs"] == {"question": "hello"}


async def test_a_workflow_output_that_differs_from_the_streamed_text_is_streamed_too(tmp_path: Path) -> None:
    # The workflow streams "You said: ..." but its `summary` output (the configured answer) differs.
    apps = {"flow": SimulatorConfig(mode="workflow", **_fast())}
    wrappers = {"flow": with_outputs({"summary": "In short: a greeting 👋"})}
    async with (
        openai_stack(tmp_path, apps, {"workflow_output": "summary"}, wrappers=wrappers) as stack,
        stack.client() as client,
    ):
        blocking = await client.chat.completions.create(model="flow", messages=ask("hello"))
        assert blocking.choices[0].message.content == "In short: a greeting 👋"
        stream = await client.chat.completions.create(
            model="flow", messages=ask("hello"), stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "In short: a greeting 👋"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop" and chunks[-1].choices == []


async def test_a_workflow_output_missing_from_the_outputs_falls_back_to_the_streamed_text(tmp_path: Path) -> None:
    apps = {"flow": SimulatorConfig(mode="workflow", **_fast())}
    async with (
        openai_stack(tmp_path, apps, {"workflow_output": "summary"}) as stack,
        stack.client() as client,
    ):
        blocking = await client.chat.completions.create(model="flow", messages=ask("hello"))
        stream = await client.chat.completions.create(model="flow", messages=ask("hello"), stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert blocking.choices[0].message.content == streamed == "You said: hello"


async def test_agent_thoughts_as_reasoning_content(tmp_path: Path) -> None:
    apps = {
        "agent": SimulatorConfig(mode="agent-chat", **_fast()),
        "new-agent": SimulatorConfig(mode="agent", **_fast()),
    }
    async with openai_stack(tmp_path, apps, {"reasoning": True}) as stack, stack.client() as client:
        # A New Agent repeats the whole answer in a closing message: it is not sent twice.
        blocking = await client.chat.completions.create(model="new-agent", messages=ask("once"))
        assert blocking.choices[0].message.content == "You said: once"
        stream = await client.chat.completions.create(model="new-agent", messages=ask("once"), stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "You said: once"
        blocking = await client.chat.completions.create(model="agent", messages=ask("think"))
        assert blocking.choices[0].message.content == "You said: think"
        assert getattr(blocking.choices[0].message, "reasoning_content", None) == "You said: think"  # an extension
        stream = await client.chat.completions.create(model="agent", messages=ask("think"), stream=True)
        chunks = [c async for c in stream]
    reasoning = [getattr(c.choices[0].delta, "reasoning_content", None) for c in chunks]
    assert "".join(r for r in reasoning if r) == "You said: think"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: think"


async def test_broadcast_model_asks_every_app(tmp_path: Path) -> None:
    apps = {"support": FAST, "coder": SimulatorConfig(answer="print('hi')", **_fast())}
    async with openai_stack(tmp_path, apps, {"broadcast_model": "all"}) as stack, stack.client() as client:
        blocking = await client.chat.completions.create(model="all", messages=ask("hello"))
        expected = "### support\n\nYou said: hello\n\n### coder\n\nprint('hi')"
        assert blocking.model == "all" and blocking.choices[0].message.content == expected
        assert blocking.usage is not None and blocking.usage.total_tokens > 0
        stream = await client.chat.completions.create(
            model="all", messages=ask("hello"), stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
        assert chunks[-1].usage == blocking.usage
        assert len({c.id for c in chunks}) == 1
        # The second turn continues each app's own conversation.
        history: list[ChatCompletionMessageParam] = [
            *ask("hello"),
            {"role": "assistant", "content": expected},
            *ask("again"),
        ]
        await client.chat.completions.create(model="all", messages=history)
        for app in apps:
            bodies = await stack.generation_bodies(app)
            assert bodies[-1]["query"] == "again" and bodies[-1]["conversation_id"]
        # One app failing leaves a note; every app failing is an error.
        await stack.http.post(f"{stack.simulators['support']}/_sim/faults", json={"fail_next": 1, "fault": "400"})
        partial = await client.chat.completions.create(model="all", messages=ask("x"))
        assert "### support\n\n_(no answer" in (partial.choices[0].message.content or "")
        assert partial.usage is None


async def test_broadcast_where_every_app_fails_gets_an_error_status(tmp_path: Path) -> None:
    async with (
        openai_stack(tmp_path, {"support": FAST}, {"broadcast_model": "all"}) as stack,
        stack.client() as client,
    ):
        for streaming in (False, True):
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model="all", messages=ask("[[fault:400]]"), stream=streaming)
            assert caught.value.status_code == 502


async def test_a_broadcast_asks_only_the_apps_the_key_may_use(tmp_path: Path) -> None:
    apps = {"support": FAST, "coder": SimulatorConfig(answer="print('hi')", **_fast())}
    async with openai_stack(tmp_path, apps, {"broadcast_model": "all"}) as stack:
        limited = await stack.action("add-key", label="coder and broadcast", models="all,coder")
        broadcast_only = await stack.action("add-key", label="broadcast only", models="all")
        async with stack.client(key=limited["key"]) as client:
            assert [m.id for m in (await client.models.list()).data] == ["coder", "all"]
            blocking = await client.chat.completions.create(model="all", messages=ask("hello"))
            assert blocking.choices[0].message.content == "### coder\n\nprint('hi')"
            stream = await client.chat.completions.create(model="all", messages=ask("hello"), stream=True)
            assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "### coder\n\nprint('hi')"
        async with stack.client(key=broadcast_only["key"]) as client:
            assert [m.id for m in (await client.models.list()).data] == []
            with pytest.raises(openai.NotFoundError) as caught:
                await client.models.retrieve("all")
            assert caught.value.code == "model_not_found"
            for streaming in (False, True):
                with pytest.raises(openai.NotFoundError) as caught:
                    await client.chat.completions.create(model="all", messages=ask("hello"), stream=streaming)
                assert caught.value.code == "model_not_found"
        assert await stack.generation_bodies("support") == []
        assert len(await stack.generation_bodies("coder")) == 2


async def test_a_broadcast_model_named_like_a_bound_app_never_shadows_it(tmp_path: Path) -> None:
    apps = {"support": FAST, "coder": SimulatorConfig(answer="print('hi')", **_fast())}
    async with (
        openai_stack(tmp_path, apps, {"broadcast_model": "support"}) as stack,
        stack.client() as client,
    ):
        assert [m.id for m in (await client.models.list()).data] == ["support", "coder"]
        blocking = await client.chat.completions.create(model="support", messages=ask("hello"))
        assert blocking.choices[0].message.content == "You said: hello"  # the app, not a broadcast
        stream = await client.chat.completions.create(model="support", messages=ask("hello"), stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "You said: hello"
        assert await stack.generation_bodies("coder") == []


def _fast() -> dict[str, Any]:
    return {"first_token_latency": 0, "tokens_per_second": 0}


async def test_a_streamed_broadcast_pings_while_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("endpoints.openai.broadcast.HEARTBEAT_SECONDS", 0.05)
    apps = {"support": FAST, "coder": SimulatorConfig(first_token_latency=0.5, tokens_per_second=0)}
    async with openai_stack(tmp_path, apps, {"broadcast_model": "all"}) as stack:
        body = {"model": "all", "messages": ask("hi"), "stream": True}
        response = await stack.http.post(
            f"{stack.base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {stack.key}"}
        )
    support, coder = response.text.index("### support"), response.text.index("### coder")
    assert ": ping\n\n" in response.text[support:coder]  # the first section went out, then pings
    assert response.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize("mode", ["workflow", "completion"])
@pytest.mark.parametrize("setting", [{}, {"query_input": "question"}], ids=["app-default", "setting"])
async def test_a_workflow_app_gets_the_message_in_its_own_input(
    tmp_path: Path, setting: dict[str, str], mode: AppMode
) -> None:
    form = (("topic", "text-input", False), ("question", "paragraph", True))
    apps = {"flow": SimulatorConfig(mode=mode, inputs=form, **_fast())}
    async with openai_stack(tmp_path, apps, setting) as stack, stack.client() as client:
        blocking = await client.chat.completions.create(model="flow", messages=ask("hello"))
        stream = await client.chat.completions.create(model="flow", messages=ask("again"), stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
        bodies = await stack.generation_bodies("flow")
    assert blocking.choices[0].message.content == "You said: hello" and streamed == "You said: again"
    assert [b["inputs"] for b in bodies] == [{"question": "hello"}, {"question": "again"}]
    assert all("query" not in b for b in bodies)  # a completion app would put a top-level query into its prompt


async def test_with_output_moderation_a_stream_sends_only_the_final_text(tmp_path: Path) -> None:
    # Dify's output moderation streams the answer, then replaces it (message_replace): the client
    # must never see the text that was replaced.
    apps = {"guarded": SimulatorConfig(moderated_words=("secret",), first_token_latency=0, tokens_per_second=200)}
    async with openai_stack(tmp_path, apps) as stack, stack.client() as client:
        stream = await client.chat.completions.create(
            model="guarded", messages=ask("tell me the secret plan now"), stream=True
        )
        chunks = [c async for c in stream]
        clean = await client.chat.completions.create(model="guarded", messages=ask("hello there"), stream=True)
        clean_chunks = [c async for c in clean]
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["[simulator] this answer was moderated"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    # An answer moderation let through is sent whole too, and ends normally.
    clean_contents = [c.choices[0].delta.content for c in clean_chunks if c.choices and c.choices[0].delta.content]
    assert clean_contents == ["You said: hello there"] and clean_chunks[-1].choices[0].finish_reason == "stop"
