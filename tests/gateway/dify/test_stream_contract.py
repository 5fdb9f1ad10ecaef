"""The Dify client's stream is the `AnswerStream` the plugin contract promises.

`gateway.plugin.AnswerStream` is a protocol (the contract loads no HTTP client); mypy checks that
`gateway.dify.stream.DifyAnswerStream` satisfies it where `read` is called, and this test that what a
plugin does with it works on the real class.
"""

from __future__ import annotations

import pytest
import respx

from gateway.dify import AskRequest, DifyClient
from gateway.dify.stream import DifyAnswerStream
from gateway.plugin import Answer, AnswerStream
from tests.gateway.dify.conftest import BASE, PING, app, end, msg, sse_response

pytestmark = pytest.mark.anyio


async def read(stream: AnswerStream, first: int) -> tuple[list[str], str | None, Answer]:
    """What plugins do with a stream: read some deltas, then the rest at once."""
    kinds: list[str] = []
    async for delta in stream:
        kinds.append(delta.kind)
        if len(kinds) == first:
            break
    return kinds, stream.conversation_id, await stream.collect()


async def test_a_dify_stream_is_read_through_the_plugin_contract(router: respx.MockRouter, client: DifyClient) -> None:
    router.post(BASE + "/chat-messages").mock(
        side_effect=lambda request: sse_response(PING, msg("Hello"), msg(" there"), msg("!"), end())
    )
    async with client.stream(app(), AskRequest(user="u1", query="hi")) as stream:
        assert isinstance(stream, DifyAnswerStream)
        kinds, conversation, answer = await read(stream, first=2)
        assert stream.answer == answer
    assert kinds == ["ping", "text"]
    assert conversation == "conv-1"
    assert answer.text == "Hello there!" and answer.complete
