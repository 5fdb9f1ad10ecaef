"""Which files an app accepts, read from its `GET /parameters` (`gateway.records.appform.FileUpload`), and
kept on the app's record so requests need no extra call."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.records.appform import FileUpload, file_type, file_upload
from gateway.records.apps import AppRecord

MB = 1024 * 1024
SYSTEM = {"file_size_limit": 15, "image_file_size_limit": 10, "audio_file_size_limit": 50}


def test_newer_dify_file_upload_settings() -> None:
    parameters = {
        "file_upload": {
            "enabled": True,
            "allowed_file_types": ["image", "document", "custom", "hologram"],
            "allowed_file_extensions": [".EPUB", "dwg"],
            "allowed_file_upload_methods": ["local_file", "ftp"],
            "number_limits": 5,
            "image": {"enabled": False, "transfer_methods": ["remote_url"]},
        },
        "system_parameters": SYSTEM,
    }
    got = file_upload(parameters)
    assert got == FileUpload(
        enabled=True,
        types=("image", "document", "custom"),
        extensions=("epub", "dwg"),
        methods=("local_file",),
        number_limit=5,
        size_limits=(("image", 10 * MB), ("audio", 50 * MB), ("document", 15 * MB), ("custom", 15 * MB)),
    )
    assert FileUpload.from_doc(got.to_doc()) == got


def test_older_dify_images_only_and_malformed_answers() -> None:
    legacy = {"file_upload": {"image": {"enabled": True, "number_limits": 2, "transfer_methods": ["remote_url"]}}}
    assert file_upload(legacy) == FileUpload(True, ("image",), (), ("remote_url",), 2, ())
    off = {"file_upload": {"image": {"enabled": False, "transfer_methods": ["remote_url", "local_file"]}}}
    assert not file_upload(off).enabled and file_upload(off).types == ()
    no_types = {"file_upload": {"enabled": True, "allowed_file_types": []}}
    assert not file_upload(no_types).enabled
    for junk in ({}, {"file_upload": "yes"}, {"file_upload": {"enabled": "true"}}, {"system_parameters": [1]}):
        assert file_upload(junk) == FileUpload()
    odd = {"file_upload": {"enabled": True, "allowed_file_types": ["image"], "number_limits": True}}
    assert file_upload({**odd, "system_parameters": {"image_file_size_limit": "10"}}).number_limit is None


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("a.PNG", "", "image"),
        ("report.pdf", "application/octet-stream", "document"),
        ("notes.txt", "", "document"),
        ("song.mp3", "", "audio"),
        ("clip.mov", "", "video"),
        ("image", "image/heic", "image"),
        ("setup.exe", "application/x-msdownload", None),
        ("drawing.dwg", "", None),
    ],
)
def test_file_types_follow_dify(name: str, mime: str, kind: str | None) -> None:
    assert file_type(name, mime) == kind


def test_check_names_what_is_refused() -> None:
    accepts = FileUpload(True, ("image", "custom"), ("dwg",), ("local_file",), 3, (("image", 100),))
    assert accepts.check("support", kind="image", label="image/png", method="local_file", size=100) == "image"
    assert accepts.check("support", kind=None, label="x", extension=".DWG", method="local_file") == "custom"
    cases: list[tuple[FileUpload, dict[str, Any], type[Exception], str]] = [
        (FileUpload(), {"kind": "image"}, BadRequest, "app 'support' does not accept files"),
        (accepts, {"kind": "image", "method": "remote_url"}, BadRequest, "uploaded files only"),
        (accepts, {"kind": "document", "label": "application/pdf"}, UnsupportedMediaType, "application/pdf"),
        (accepts, {"kind": "image", "size": 101}, PayloadTooLarge, "at most 100 bytes"),
    ]
    for config, args, error, words in cases:
        with pytest.raises(error) as caught:
            config.check("support", **{"label": "image/png", "method": "local_file", **args})
        assert words in str(caught.value)
    anyway = FileUpload(True, ("image",))  # no methods said: Dify's default takes both
    assert anyway.check("support", kind="image", label="image", method="remote_url") == "image"


def test_records_kept_before_files_were_read_are_read_again() -> None:
    doc = {
        "name": "support",
        "base_url": "http://dify/v1",
        "api_key": "sealed",
        "mode": "chat",
        "created_at": 1.0,
        "updated_at": 1.0,
        "inputs": [],
        "output_moderation": False,
    }
    old = AppRecord.from_doc(doc)
    assert old.files is None and not old.described
    new = AppRecord.from_doc({**doc, "files": FileUpload(True, ("image",)).to_doc()})
    assert new.described and new.files == FileUpload(True, ("image",))
    assert AppRecord.from_doc(new.to_doc()) == new
