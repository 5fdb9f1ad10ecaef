"""`endpoints.openai.files`: image and file parts parsed the same way on every route (pure part)."""

from __future__ import annotations

from typing import Any

import pytest

from endpoints.openai.errors import OpenAIError
from endpoints.openai.files import Attachment, file_part, image_part
from endpoints.openai.responses import parse_responses_request
from endpoints.openai.translate import Message, history_key, parse_chat_request, transcript

DATA = "data:image/png;base64,iVBORw0KGgo="


def test_images_by_url_or_inline() -> None:
    assert image_part({"url": "https://x.test/a.png"}, "p") == Attachment.of("https://x.test/a.png", "image", "p")
    inline = image_part(DATA, "p")
    assert inline.inline and inline.key.startswith("sha256:") and DATA not in inline.key
    assert image_part("DATA:image/png;base64,AA==", "p").inline


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ftp://x.test/a.png", "http(s) or data:"),
        ("data:image/png;base64", "comma"),
        (None, "needs a url"),
    ],
)
def test_unusable_images(value: Any, words: str) -> None:
    with pytest.raises(OpenAIError) as caught:
        image_part(value, "here")
    assert words in caught.value.message and caught.value.param == "here" and caught.value.status == 400


def test_file_parts() -> None:
    pdf = file_part({"file_data": "data:application/pdf;base64,JVBERg==", "filename": "a/b.pdf"}, "f")
    assert pdf.filename == "a_b.pdf" and pdf.param == "f.file_data" and pdf.inline
    bare = file_part({"file_data": "JVBERg==", "filename": "r.pdf"}, "f")
    assert bare.url == "data:application/pdf;base64,JVBERg=="
    remote = file_part({"file_url": "https://x.test/r.pdf"}, "f")
    assert not remote.inline and remote.param == "f.file_url"
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"file_data": "JVBERg=="}, "f.filename"),  # bare base64: its type comes from the name
        ({"file_id": "file-abc"}, "f.file_id"),
        ({"file_url": "file:///etc/passwd"}, "f.file_url"),
        ({"file_data": DATA, "filename": ""}, "f.filename"),
        ({}, "f"),
    ]
    for part, param in cases:
        with pytest.raises(OpenAIError) as caught:
            file_part(part, "f")
        assert caught.value.param == param


def test_chat_and_responses_parse_the_same_parts() -> None:
    chat = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": DATA}},
                        {"type": "file", "file": {"file_data": DATA, "filename": "x.png"}},
                    ],
                }
            ],
        }
    )
    responses = parse_responses_request(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": DATA},
                        {"type": "input_file", "file_data": DATA, "filename": "x.png"},
                    ],
                }
            ],
        }
    )
    assert [(f.url, f.kind, f.filename) for f in chat.messages[0].files] == [
        (f.url, f.kind, f.filename) for f in responses.chat.messages[0].files
    ]
    with pytest.raises(OpenAIError) as caught:
        parse_responses_request(
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}
        )
    assert caught.value.param == "input[0].content[0].file_id"


def test_inline_data_never_reaches_a_transcript_and_fingerprints_by_digest() -> None:
    inline = Attachment.of(DATA, "image", "p")
    named = Attachment.of(DATA, "file", "p", "scan.png")
    text = transcript([Message("user", "look", (inline, named)), Message("assistant", "a cat")])
    assert text == "<history>\nUser: look [image] [file: scan.png]\nAssistant: a cat\n</history>"
    same = history_key("k", "u", "m", [Message("user", "look", (Attachment.of(DATA, "image", "elsewhere"),))])
    assert history_key("k", "u", "m", [Message("user", "look", (inline,))]) == same
    other = Attachment.of("data:image/png;base64,AAAA", "image", "p")
    assert history_key("k", "u", "m", [Message("user", "look", (other,))]) != same


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://127.0.0.1/a.png",
        "https://[::ffff:10.0.0.1]/a.png",
        "https://2130706433/a.png",  # 127.0.0.1 as one number
        "https://localhost:8080/a.png",
        "https://api.internal/a.png",
        "https://printer/a.png",  # a single-label name: only a local resolver knows it
    ],
)
def test_urls_dify_would_fetch_inside_its_network_are_refused(url: str) -> None:
    with pytest.raises(OpenAIError) as caught:
        image_part({"url": url}, "messages[0].content[1].image_url")
    assert caught.value.status == 400 and caught.value.code == "invalid_url" and "public host" in caught.value.message
    with pytest.raises(OpenAIError) as caught:
        file_part({"file_url": url}, "input[0].content[0]")
    assert caught.value.param == "input[0].content[0].file_url"
