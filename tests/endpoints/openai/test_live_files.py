"""Images and files through the openai plugin, with the real `openai` SDK against a real uvicorn
gateway and the Dify simulator: inline data uploaded to Dify (`/files/upload`) under the answer's
user and sent as `local_file`, URLs sent as `remote_url`, and every refusal an OpenAI error
naming the part (issue 17 item 4)."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from openai.types.chat import (
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
)
from openai.types.responses import Response, ResponseInputMessageContentListParam

from tests.endpoints.openai.stack import FAST, Stack, openai_stack
from tests.support.gateway import admin_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

FILES = dataclasses.replace(FAST, file_upload=True)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PDF = b"%PDF-1.4\n" + b"x" * 100
LIMIT = 4096  # the endpoint's max_file_bytes in these tests


def data_url(mime: str, content: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(content).decode()


def look(*parts: ChatCompletionContentPartParam) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": [{"type": "text", "text": "what is this"}, *parts]}]


def image(url: str) -> ChatCompletionContentPartImageParam:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    apps = {"support": FILES, "plain": FAST}
    async with openai_stack(tmp_path, apps, {"max_file_bytes": LIMIT}) as running:
        yield running


async def uploads(stack: Stack, app: str = "support") -> list[dict[str, Any]]:
    stats = await stack.stats(app)
    return list(stats["uploads"])


async def test_a_data_image_is_uploaded_and_sent_as_a_local_file(stack: Stack) -> None:
    async with stack.client() as client:
        done = await client.chat.completions.create(model="support", messages=look(image(data_url("image/png", PNG))))
        assert done.choices[0].message.content == "You said: what is this"
        stream = await client.chat.completions.create(
            model="support", messages=look(image(data_url("image/png", PNG))), stream=True, user="bob"
        )
        streamed = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert streamed == "You said: what is this"
    stored = await uploads(stack)
    assert [(u["mime_type"], u["size"], u["extension"]) for u in stored] == [("image/png", len(PNG), "png")] * 2
    bodies = await stack.generation_bodies()
    for body, upload in zip(bodies, stored, strict=True):
        # uploaded under the very user that asks: Dify refuses a file of another user
        assert upload["created_by"] == body["user"]
        assert body["files"] == [{"type": "image", "transfer_method": "local_file", "upload_file_id": upload["id"]}]
    assert bodies[1]["user"].endswith(":bob")


async def test_https_images_still_go_by_url_and_the_file_settings_are_read_once(stack: Stack) -> None:
    async with stack.client() as client:
        for _ in range(3):
            await client.chat.completions.create(model="support", messages=look(image("https://x.test/a.png")))
    bodies = await stack.generation_bodies()
    assert [b["files"] for b in bodies] == [
        [{"type": "image", "transfer_method": "remote_url", "url": "https://x.test/a.png"}]
    ] * 3
    assert await uploads(stack) == []
    # The app's file settings live on its record: one GET /parameters, not one per request.
    assert (await stack.stats())["requests_by_path"].get("GET /v1/parameters") == 1


async def test_an_app_without_file_upload_is_a_400_naming_it(stack: Stack) -> None:
    async with stack.client() as client:
        for url in (data_url("image/png", PNG), "https://x.test/a.png"):
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model="plain", messages=look(image(url)), stream=True)
            assert "'plain'" in caught.value.message and "does not accept files" in caught.value.message
            assert caught.value.param == "messages[0].content[1].image_url"
    stats = await stack.stats("plain")
    assert stats["uploads"] == [] and stats["generation_requests"] == 0  # nothing silently dropped


async def test_an_unsupported_type_is_a_400_naming_the_type(stack: Stack) -> None:
    exe: ChatCompletionContentPartParam = {
        "type": "file",
        "file": {"file_data": data_url("application/x-msdownload", b"MZ"), "filename": "setup.exe"},
    }
    async with stack.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="support", messages=look(exe))
        assert "application/x-msdownload" in caught.value.message and caught.value.code == "unsupported_file_type"
        assert caught.value.param == "messages[0].content[1].file.file_data"
        audio: ResponseInputMessageContentListParam = [{"type": "input_file", "file_url": "https://x.test/song.mp3"}]
        with pytest.raises(openai.BadRequestError) as remote:
            await client.responses.create(model="support", input=[{"role": "user", "content": audio}])
        assert ".mp3" in remote.value.message and remote.value.param == "input[0].content[0].file_url"
        with pytest.raises(openai.BadRequestError) as file_id:
            await client.responses.create(
                model="support", input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]
            )
        assert file_id.value.param == "input[0].content[0].file_id"
    assert await uploads(stack) == []


async def test_a_file_over_the_limit_is_a_413_in_openai_shape(tmp_path: Path) -> None:
    small_dify = dataclasses.replace(FILES, max_upload_bytes=1000)  # Dify's own limit, below the endpoint's
    async with openai_stack(tmp_path, {"support": FILES, "small": small_dify}, {"max_file_bytes": LIMIT}) as stack:
        async with stack.client() as client:
            with pytest.raises(openai.APIStatusError) as ours:
                await client.chat.completions.create(
                    model="support", messages=look(image(data_url("image/png", PNG * 100)))
                )
            with pytest.raises(openai.APIStatusError) as theirs:
                await client.chat.completions.create(
                    model="small", messages=look(image(data_url("image/png", PNG * 20)))
                )
        raw = await stack.http.post(
            f"{stack.base_url}/chat/completions",
            json={"model": "support", "messages": look(image(data_url("image/png", PNG * 100)))},
            headers={"authorization": f"Bearer {stack.key}"},
        )
        assert await uploads(stack) == []  # refused before a byte went to Dify
    for caught in (ours, theirs):
        assert caught.value.status_code == 413 and caught.value.code == "file_too_large"
        assert caught.value.param == "messages[0].content[1].image_url"
    assert raw.status_code == 413
    assert raw.json() == {
        "error": {
            "message": f"the image is larger than this endpoint accepts ({LIMIT} bytes)",
            "type": "invalid_request_error",
            "param": "messages[0].content[1].image_url",
            "code": "file_too_large",
        }
    }


async def test_input_file_and_input_image_on_responses(stack: Stack) -> None:
    content: ResponseInputMessageContentListParam = [
        {"type": "input_text", "text": "summarize"},
        {"type": "input_file", "filename": "report.pdf", "file_data": data_url("application/pdf", PDF)},
        {"type": "input_image", "image_url": data_url("image/png", PNG), "detail": "auto"},
        {"type": "input_file", "filename": "notes.txt", "file_data": base64.b64encode(b"plain notes").decode()},
    ]

    def run() -> Response:
        with stack.sync_client() as client:
            return client.responses.create(model="support", input=[{"role": "user", "content": content}])

    done = await anyio.to_thread.run_sync(run)
    assert done.output_text == "You said: summarize"
    stored = await uploads(stack)
    assert [(u["name"], u["mime_type"]) for u in stored] == [
        ("report.pdf", "application/pdf"),
        ("image.png", "image/png"),
        ("notes.txt", "text/plain"),
    ]
    (body,) = await stack.generation_bodies()
    assert body["files"] == [
        {"type": kind, "transfer_method": "local_file", "upload_file_id": upload["id"]}
        for kind, upload in zip(["document", "image", "document"], stored, strict=True)
    ]
    assert all(upload["created_by"] == body["user"] for upload in stored)


async def test_bad_inline_data_is_a_400(stack: Stack) -> None:
    async with stack.client() as client:
        for url, words in [("data:image/png;base64,@@@@", "base64"), ("data:image/png;base64", "comma")]:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model="support", messages=look(image(url)))
            assert words in caught.value.message and caught.value.param == "messages[0].content[1].image_url"
        many = [image(data_url("image/png", PNG))] * 4  # the simulated app takes 3 per message
        with pytest.raises(openai.BadRequestError) as too_many:
            await client.chat.completions.create(model="support", messages=look(*many))
        assert (
            "at most 3 files" in too_many.value.message and too_many.value.param == "messages[0].content[4].image_url"
        )
    assert await uploads(stack) == []


async def test_a_history_with_inline_images_continues_its_conversation(stack: Stack) -> None:
    first = look(image(data_url("image/png", PNG)))
    async with stack.client() as client:
        answer = await client.chat.completions.create(model="support", messages=first)
        history: list[ChatCompletionMessageParam] = [
            *first,
            {"role": "assistant", "content": answer.choices[0].message.content},
        ]
        await client.chat.completions.create(model="support", messages=[*history, {"role": "user", "content": "and?"}])
    first_body, second_body = await stack.generation_bodies()
    assert second_body["conversation_id"] and "files" not in second_body
    assert "base64" not in second_body["query"]  # never the data itself in a query


async def test_a_call_with_uploaded_files_never_goes_to_the_fallback_app(tmp_path: Path) -> None:
    broken = dataclasses.replace(FILES, fault="400")  # every answer fails before streaming
    async with openai_stack(tmp_path, {"support": broken, "backup": FILES}) as stack:
        changed = await stack.http.patch(
            f"{stack.gateway}/admin/api/apps/support", json={"fallback": "backup"}, headers=admin_headers()
        )
        assert changed.status_code == 200, changed.text
        async with stack.client() as client:
            plain = await client.chat.completions.create(model="support", messages=look())
            assert plain.choices[0].message.content == "You said: what is this"  # the fallback answered
            with pytest.raises(openai.InternalServerError):  # it can't see a file uploaded to another app
                await client.chat.completions.create(model="support", messages=look(image(data_url("image/png", PNG))))
        asked, primary = await stack.generation_bodies("backup"), await stack.stats("support")
    assert len(asked) == 1 and "files" not in asked[0] and len(primary["uploads"]) == 1


async def test_a_media_type_that_could_forge_multipart_headers_is_refused(stack: Stack) -> None:
    forged = 'data:image/png\r\nContent-Disposition: form-data; name="user"\r\n\r\nvictim;base64,' + "iVBORw0KGgo="
    async with stack.client() as client:
        for url in (forged, "data:png;base64,iVBORw0KGgo="):
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model="support", messages=look(image(url)))
            assert "is not a media type" in caught.value.message
            assert caught.value.param == "messages[0].content[1].image_url"
    assert await uploads(stack) == []
