"""`export` and `apply`: round trips, dry runs, idempotency, prune, ids and URLs, malformed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.configfile import yamlfile
from gateway.configfile.exporter import to_file
from gateway.exceptions import ValidationFailed
from gateway.host.runtime import Gateway
from gateway.security.crypto import MASK
from tests.support.configfile import GatewayFactory, gateway_factory, populate, service

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "redis"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> GatewayFactory:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return gateway_factory(request.param, tmp_path, redis_url)


async def secrets_of(gw: Gateway) -> dict[str, str]:
    """What an operator puts in the environment for an export's references."""
    state, _ = await service(gw).state()
    return to_file(state)[1]


async def test_export_then_apply_on_a_fresh_gateway_exports_the_same_bytes(fresh: GatewayFactory) -> None:
    async with fresh() as first:
        made = await populate(first)
        exported = (await service(first).export()).text
        variables = await secrets_of(first)
    assert "app-support-1" not in exported and made["hook_secret"] not in exported and "xoxb-1" not in exported
    assert "${APP_SUPPORT_KEY}" in exported and f"${{{made['slack'].upper()}_SIGNING_SECRET}}" in exported
    async with fresh() as second:
        prepared = await service(second).apply(exported, variables)
        assert [c.describe() for c in prepared.changes][:2] == ["+ create app backup", "+ create app support"]
        assert await secrets_of(second) == variables  # keys and secrets came through the environment
        assert (await service(second).export()).text == exported
        slack = await second.endpoints.get(made["slack"])
        assert slack.enabled is False and (await second.apps.get("support")).fallback == "backup"


async def test_a_second_apply_changes_nothing_and_an_existing_endpoint_keeps_its_url(fresh: GatewayFactory) -> None:
    async with fresh() as gw:
        made = await populate(gw)
        text = (await service(gw).export()).text
        variables = await secrets_of(gw)
        assert (await service(gw).apply(text, variables)).changes == []
        edited = text.replace("wait_seconds: 30.0", "wait_seconds: 45.0").replace("greeting: hi", "greeting: hello")
        changes = (await service(gw).apply(edited, variables)).changes
        assert sorted(c.describe() for c in changes) == sorted(
            [
                f"~ update endpoint {made['echo']} (settings.greeting)",
                f"~ update endpoint {made['hook']} (settings.wait_seconds)",
            ]
        )
        assert (await service(gw).apply(edited, variables)).changes == []
        for endpoint_id, url in made["urls"].items():
            assert gw.endpoints.url(await gw.endpoints.get(endpoint_id)) == url
        hook = await gw.endpoints.get(made["hook"])
        settings: Any = gw.endpoints.settings(hook, gw.registry.require("webhook"))
        assert settings.secret.get_secret_value() == made["hook_secret"]


async def test_dry_run_prints_the_changes_and_makes_none(fresh: GatewayFactory) -> None:
    async with fresh() as first:
        await populate(first)
        text = (await service(first).export()).text
        variables = await secrets_of(first)
    async with fresh() as second:
        prepared = await service(second).apply(text, variables, dry_run=True)
        assert len(prepared.changes) == 5
        assert await second.apps.all() == [] and await second.endpoints.all() == []


async def test_secrets_left_out_are_kept_and_a_changed_secret_is_named_not_shown(fresh: GatewayFactory) -> None:
    async with fresh() as gw:
        made = await populate(gw)
        text = (await service(gw).export()).text
        variables = await secrets_of(gw)
        config = yamlfile.read(text).config
        without = yamlfile.write(
            config.model_copy(
                update={
                    "apps": tuple(a.model_copy(update={"api_key": None}) for a in config.apps),
                    "endpoints": tuple(
                        e.model_copy(update={"settings": {k: v for k, v in e.settings.items() if "${" not in str(v)}})
                        for e in config.endpoints
                    ),
                }
            )
        )
        assert "${" not in without
        assert (await service(gw).apply(without, {})).changes == []
        changed = {**variables, "APP_SUPPORT_KEY": "app-support-2"}
        changes = (await service(gw).apply(text, changed)).changes
        assert [c.describe() for c in changes] == ["~ update app support (api_key)"]
        assert gw.apps.api_key(await gw.apps.get("support")) == "app-support-2"
        assert made["hook"]


async def test_prune_deletes_only_what_the_file_lacks(fresh: GatewayFactory) -> None:
    async with fresh() as gw:
        made = await populate(gw)
        variables = await secrets_of(gw)
        config, _ = to_file((await service(gw).state())[0])
        kept = config.model_copy(update={"endpoints": tuple(e for e in config.endpoints if e.id == made["echo"])})
        text = yamlfile.write(kept)
        assert (await service(gw).apply(text, variables)).changes == []  # without --prune nothing goes
        changes = (await service(gw).apply(text, variables, prune=True)).changes
        assert sorted(c.describe() for c in changes) == sorted(
            [f"- delete endpoint {made['hook']}", f"- delete endpoint {made['slack']}"]
        )
        assert [e.id for e in await gw.endpoints.all()] == [made["echo"]]
        only_echo = kept.model_copy(update={"apps": ()})
        changes = (await service(gw).apply(yamlfile.write(only_echo), variables, prune=True)).changes
        assert [c.describe() for c in changes] == ["- delete app backup", "- delete app support"]
        assert await gw.apps.all() == []


MALFORMED = [
    ("version: 1\napps:\n  - name: support\n    mode: chatty\n", "apps.0.mode", 4),
    (
        "version: 1\nendpoints:\n  - id: ep_0000000000000001\n    plugin: echo\n    colour: red\n",
        "endpoints.0.colour",
        5,
    ),
    ("version: 1\napps:\n  - name: a\n    mode: chat\n    api_key: ${NOT_SET_ANYWHERE}\n", "apps.0.api_key", 5),
    ("version: 1\nendpoints:\n  - id: ep_0000000000000001\n    plugin: nope\n", "endpoints.0.plugin", 4),
    (
        "version: 1\nendpoints:\n  - id: ep_0000000000000001\n    plugin: echo\n    settings:\n      greeting: 5\n",
        "endpoints.0.settings.greeting",
        6,
    ),
    (
        "version: 1\nendpoints:\n  - id: ep_0000000000000001\n    plugin: webhook\n    apps: [ghost]\n",
        "endpoints.0.apps",
        5,
    ),
    ("version: 1\napps: [\n", "", 3),
    (
        f"version: 1\napps:\n  - name: a\n    mode: chat\n    api_key: {MASK}\n",
        "apps.0.api_key",
        5,
    ),
    (
        f"version: 1\nendpoints:\n  - id: ep_0000000000000001\n    plugin: echo\n    settings:\n      token: {MASK}\n",
        "endpoints.0.settings.token",
        6,
    ),
    ("version: 1\napps:\n  - name: a\n    mode: chat\n    base_url: ftp://x\n    api_key: k\n", "apps.0.base_url", 5),
]


@pytest.mark.parametrize(("text", "field", "line"), MALFORMED)
async def test_a_malformed_file_is_refused_whole_with_the_line_and_field(
    fresh: GatewayFactory, text: str, field: str, line: int
) -> None:
    good_app = "  - name: fine\n    mode: chat\n    api_key: app-fine-key\n"
    async with fresh() as gw:
        # A valid app before the bad part: it must not be added either.
        broken = text.replace("apps:\n", "apps:\n" + good_app, 1) if "apps:\n  -" in text else text
        with pytest.raises(ValidationFailed) as refused:
            await service(gw).apply(broken, {})
        errors = refused.value.errors
        shift = 3 if broken is not text else 0
        field = field.replace("apps.0", "apps.1") if shift else field
        assert {"field": field, "line": line + shift} == {k: errors[0][k] for k in ("field", "line")}, errors
        assert f"line {line + shift}" in refused.value.message
        assert await gw.apps.all() == [] and await gw.endpoints.all() == []


async def test_a_new_base_url_without_the_key_is_refused(fresh: GatewayFactory) -> None:
    async with fresh() as gw:
        await populate(gw)
        config = yamlfile.read((await service(gw).export()).text).config
        moved = config.model_copy(
            update={"apps": tuple(a.model_copy(update={"base_url": "https://elsewhere.test/v1"}) for a in config.apps)}
        )
        keyless = moved.model_copy(update={"apps": tuple(a.model_copy(update={"api_key": None}) for a in moved.apps)})
        with pytest.raises(ValidationFailed) as refused:
            await service(gw).apply(yamlfile.write(keyless), await secrets_of(gw))
        assert refused.value.errors and refused.value.errors[0]["field"] == "apps.0.api_key"
        assert "another host" in str(refused.value.errors[0]["message"])
        assert (await gw.apps.get("support")).base_url == "http://dify.test/v1"  # nothing applied
        variables = {**await secrets_of(gw), "APP_SUPPORT_KEY": "app-support-2"}
        changes = (await service(gw).apply(yamlfile.write(moved), variables)).changes
        # backup keeps its key, given again in the file: the operator sends it to the new host knowingly
        assert [c.describe() for c in changes] == [
            "~ update app backup (base_url)",
            "~ update app support (base_url, api_key)",
        ]
        assert (await gw.apps.get("support")).base_url == "https://elsewhere.test/v1"
        assert (await gw.apps.get("backup")).base_url == "https://elsewhere.test/v1"


async def test_a_refused_value_is_never_echoed(fresh: GatewayFactory) -> None:
    text = (
        "version: 1\nendpoints:\n  - id: ep_0000000000000001\n    plugin: webhook\n    apps: []\n"
        "    settings:\n      secret: not-a-whsec-super-secret\n"
    )
    async with fresh() as gw:
        with pytest.raises(ValidationFailed) as refused:
            await service(gw).apply(text, {})
        assert "super-secret" not in refused.value.message and "super-secret" not in str(refused.value.errors)


async def test_a_workspace_is_exported_applied_and_pruned_on_its_own(fresh: GatewayFactory) -> None:
    from pydantic import SecretStr

    from gateway.exceptions import NotFound
    from gateway.records.apps import AppIn
    from gateway.records.workspaces import WorkspaceIn

    async with fresh() as gw:
        made = await populate(gw)  # the default workspace
        await gw.workspaces.create(WorkspaceIn(name="team-a"))
        key = SecretStr("app-team-a")
        await gw.apps.add(
            AppIn(name="support", base_url="http://dify.test/v1", api_key=key, mode="chat"), workspace="team-a"
        )
        theirs, _ = await gw.endpoints.create("echo", [], {"greeting": "team a"}, workspace="team-a")
        text = (await service(gw).export("team-a")).text
        assert "workspace: team-a" in text and theirs.id in text and made["hook"] not in text

        # The team's file without its endpoint, pruned: only the team's endpoint goes.
        config = yamlfile.read(text).config
        emptied = yamlfile.write(config.model_copy(update={"endpoints": ()}))
        assert "${TEAM_A_APP_SUPPORT_KEY}" in text  # app names repeat across workspaces; their variables don't
        variables = {"TEAM_A_APP_SUPPORT_KEY": "app-team-a"}
        changes = (await service(gw).apply(emptied, variables, prune=True)).changes
        assert [c.describe() for c in changes] == [f"- delete endpoint {theirs.id}"]
        assert len(await gw.endpoints.all("default")) == 3 and await gw.endpoints.all("team-a") == []

        # A new endpoint made from the team's file lands in the team's workspace.
        again = yamlfile.write(config)
        assert [c.action for c in (await service(gw).apply(again, variables)).changes] == ["create"]
        assert (await gw.endpoints.get(theirs.id)).workspace == "team-a"

        with pytest.raises(NotFound):
            await service(gw).apply(again.replace("workspace: team-a", "workspace: nobody"), variables)
        with pytest.raises(NotFound):
            await service(gw).export("nobody")


async def test_installed_dify_packages_are_listed_and_checked_never_installed(fresh: GatewayFactory) -> None:
    from gateway.records.installations import Installation, InstallationRecords

    def installation(version: str) -> Installation:
        identity = f"langgenius/slack_bot:{version}@{'9f' * 32}"
        return Installation(
            key="langgenius/slack_bot",
            identity=identity,
            version=version,
            sha256="9f" * 32,
            archive_sha256="ab" * 32,
            signed=True,
            signer="dify",
            signature_reason="signed with Dify's official key",
            allowed_unsigned=False,
            permissions={},
            settings_form=(),
            install_dir="/nonexistent",
            package_path="/nonexistent.difypkg",
            installed_at=1.0,
            updated_at=1.0,
        )

    async with fresh() as first:
        await InstallationRecords(first.store).put(installation("0.0.7"))
        text = (await service(first).export()).text
    assert "packages:\n- identity: langgenius/slack_bot:0.0.7@" in text
    async with fresh() as second:
        with pytest.raises(ValidationFailed) as missing:
            await service(second).apply(text, {})
        assert missing.value.errors[0]["field"] == "packages.0.key"
        assert "langgenius/slack_bot is not installed" in missing.value.message
        await InstallationRecords(second.store).put(installation("0.0.8"))
        with pytest.raises(ValidationFailed) as other:
            await service(second).apply(text, {})
        assert other.value.errors[0]["field"] == "packages.0.identity"
        await InstallationRecords(second.store).put(installation("0.0.7"))
        assert (await service(second).apply(text, {})).changes == []
        assert (await service(second).export()).text == text


async def test_a_url_retired_in_one_workspace_is_never_taken_up_by_another(fresh: GatewayFactory) -> None:
    """A URL token comes back with its endpoint (apply, a snapshot's restore) only in the workspace
    it was made in: another team that learned a URL its owner retired (rotated after a leak, or
    deleted) can't make an endpoint answer it, and catch what callers still send there."""
    from gateway.exceptions import Conflict
    from gateway.records.workspaces import WorkspaceIn

    async with fresh() as gw:
        await gw.workspaces.create(WorkspaceIn(name="team-b"))
        record, url = await gw.endpoints.create("echo", [], {"greeting": "a"})
        token = url.rsplit("/", 1)[-1]
        await gw.endpoints.rotate(record.id, grace=0)  # retired at once
        with pytest.raises(Conflict, match="another workspace"):
            await gw.endpoints.create_with_secrets("echo", [], {}, token=token, workspace="team-b")
        file = (
            "version: 1\nworkspace: team-b\nendpoints:\n"
            f"- id: ep_00000000000000aa\n  plugin: echo\n  url_token: {token}\n"
        )
        with pytest.raises(ValidationFailed) as refused:
            await service(gw).apply(file, {})
        assert "another workspace" in str(refused.value.errors)
        await gw.endpoints.delete(record.id)
        with pytest.raises(Conflict, match="another workspace"):
            await gw.endpoints.create_with_secrets("echo", [], {}, token=token, workspace="team-b")
        back, back_url, _ = await gw.endpoints.create_with_secrets("echo", [], {}, token=token)
        assert back_url == url and back.workspace == "default"  # its own workspace: restored
