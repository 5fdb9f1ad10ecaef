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


async def test_ready_says_whether_the_next_step_arrived_already(router: respx.MockRouter, client: DifyClient) -> None:
    """Events that came in one read are `ready`; reading on past them waits for the network."""
    router.post(BASE + "/chat-messages").mock(
        side_effect=lambda request: sse_response(msg("a"), msg("b"), msg("c"), end(), size=1 << 20)
    )
    async with client.stream(app(), AskRequest(user="u1", query="hi")) as stream:
        seen = []
        async for delta in stream:
            seen.append((delta.text, stream.ready))
        assert not stream.ready  # the answer ended
        assert stream.answer.text == "abc"
    # "c" is followed by message_end in the same read; after the last text, nothing is left.
    assert seen == [("a", True), ("b", True), ("c", True)]
    assert not stream.ready  # closed


async def test_ready_is_false_until_the_next_read(router: respx.MockRouter, client: DifyClient) -> None:
    router.post(BASE + "/chat-messages").mock(
        side_effect=lambda request: sse_response(msg("Hello"), msg(" there"), end(), size=1)  # a byte per read
    )
    async with client.stream(app(), AskRequest(user="u1", query="hi")) as stream:
        async for delta in stream:
            assert not stream.ready  # each event takes reads of its own
            assert delta.text
        assert stream.answer.text == "Hello there"
