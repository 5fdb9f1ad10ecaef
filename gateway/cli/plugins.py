"""`dify-gateway plugins`: the gateway's plugins, and Dify plugin packages (install, upgrade, remove,
verify, sign, keygen)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from gateway.admin.pluginrows import installation_out, plugin_listing
from gateway.cli.common import emit, fail, iso_time, load_settings, run, table
from gateway.cli.workspaces import workspace_option
from gateway.clock import SystemClock
from gateway.difyplugins.package import pack_directory
from gateway.difyplugins.signature import generate_keypair, load_trusted_keys, sign_package, verify_package
from gateway.exceptions import GatewayError
from gateway.host.runtime import Gateway
from gateway.settings import Settings

__all__ = ["plugins"]


def _package_bytes(source: str) -> bytes:
    """A package file's bytes, or a plugin directory packed the same way every time."""
    path = Path(source)
    try:
        return pack_directory(path) if path.is_dir() else path.read_bytes()
    except GatewayError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")


@click.group("plugins")
def plugins() -> None:
    """The gateway's plugins and installed Dify plugin packages."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
def plugins_list(as_json: bool) -> None:
    """Every plugin: built-in, from Python entry points, or from a Dify package."""

    def human(listing: dict[str, Any]) -> str:
        rows: list[tuple[object, ...]] = [
            (p["name"], p["origin"], p["version"] or "", "", "", ",".join(p["permissions"]), "")
            for p in listing["plugins"]
        ]
        rows += [
            (
                p["name"],
                p["origin"],
                p["version"],
                p["identity"],
                p["signature"] + (f" ({p['signer']})" if p["signer"] else ""),
                ",".join(p["permissions"]),
                p["runtime_state"] or "",
            )
            for p in listing["dify_plugins"]
        ]
        return table(rows, ["NAME", "ORIGIN", "VERSION", "IDENTITY", "SIGNATURE", "PERMISSIONS", "RUNTIME"])

    emit(run(plugin_listing), as_json, human)


def _installed(installation: dict[str, Any]) -> str:
    signature = installation["signature"] + (f" by {installation['signer']}" if installation["signer"] else "")
    return (
        f"{installation['identity']} installed ({signature})\n"
        f"permissions: {', '.join(installation['permissions']) or 'none'}\n"
        f"mint an endpoint: dify-gateway endpoints create --plugin {installation['name']} --app APP"
    )


_allow_unsigned = click.option(
    "--allow-unsigned", is_flag=True, help="Install even if no trusted key signed it (know where it came from)"
)
_wheels = click.option(
    "--wheels",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Install the plugin's dependencies from this directory of wheels only (offline)",
)


def _change(package: str, *, upgrade: bool, allow_unsigned: bool, wheels: Path | None, as_json: bool) -> None:
    data = _package_bytes(package)

    async def action(gw: Gateway) -> dict[str, Any]:
        change = gw.dify_plugins.upgrade if upgrade else gw.dify_plugins.install
        found = await change(data, allow_unsigned=allow_unsigned, wheels=wheels)
        return installation_out(found, gw.dify_plugins.runtime_state(found))

    emit(run(action), as_json, _installed)


_json = click.option("--json", "as_json", is_flag=True)


@plugins.command("install")
@click.argument("package")
@_allow_unsigned
@_wheels
@_json
def plugins_install(package: str, allow_unsigned: bool, wheels: Path | None, as_json: bool) -> None:
    """Install a Dify plugin package (PKG.difypkg) or an unpacked plugin directory."""
    _change(package, upgrade=False, allow_unsigned=allow_unsigned, wheels=wheels, as_json=as_json)


@plugins.command("upgrade")
@click.argument("package")
@_allow_unsigned
@_wheels
@_json
def plugins_upgrade(package: str, allow_unsigned: bool, wheels: Path | None, as_json: bool) -> None:
    """Replace an installed Dify plugin with another version; its endpoints keep their URLs."""
    _change(package, upgrade=True, allow_unsigned=allow_unsigned, wheels=wheels, as_json=as_json)


@plugins.command("remove")
@click.argument("name")
@click.option(
    "--disable-endpoints", is_flag=True, help="Disable the endpoints that use it (never deleted; URLs are kept)"
)
@click.option("--json", "as_json", is_flag=True)
def plugins_remove(name: str, disable_endpoints: bool, as_json: bool) -> None:
    """Uninstall a Dify plugin (author/name). Refused while enabled endpoints use it."""

    async def action(gw: Gateway) -> dict[str, Any]:
        found, disabled = await gw.dify_plugins.remove(name, disable_endpoints=disable_endpoints)
        return {"deleted": found.key, "disabled_endpoints": disabled}

    def human(result: dict[str, Any]) -> str:
        disabled = result["disabled_endpoints"]
        note = f"; disabled endpoints (URLs kept): {', '.join(disabled)}" if disabled else ""
        return f"removed {result['deleted']}{note}"

    emit(run(action), as_json, human)


@plugins.command("verify")
@click.argument("package")
@click.option("--json", "as_json", is_flag=True)
def plugins_verify(package: str, as_json: bool) -> None:
    """Check a package's signature against Dify's key and GATEWAY_PLUGIN_PUBLIC_KEYS; installs nothing.

    Exits 1 when the package is not signed by a trusted key.
    """
    settings = load_settings()
    data = _package_bytes(package)
    try:
        found = verify_package(data, load_trusted_keys(settings.plugin_public_keys)).to_dict()
    except GatewayError as exc:
        found = {"signed": False, "signer": None, "identity": None, "reason": exc.message}
    emit(found, as_json, lambda v: f"{v['identity'] or package}: {v['reason']}")
    if not found["signed"]:
        raise SystemExit(1)


@plugins.command("keygen")
@click.option("--out", "prefix", required=True, help="Writes PREFIX.private.pem (mode 0600) and PREFIX.public.pem")
def plugins_keygen(prefix: str) -> None:
    """Make an RSA-4096 key pair for signing packages (Dify's format: PKCS#1 PEM)."""
    private_path, public_path = Path(f"{prefix}.private.pem"), Path(f"{prefix}.public.pem")
    for path in (private_path, public_path):
        if path.exists():
            fail(f"{path} exists; choose another --out")
    private, public = generate_keypair()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    public_path.write_bytes(public)
    click.echo(f"wrote {private_path} (keep it secret) and {public_path} (add it to GATEWAY_PLUGIN_PUBLIC_KEYS)")


@plugins.command("sign")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--category",
    type=click.Choice(["langgenius", "partner", "community"]),
    default=None,
    help="Add .verification.dify.json with this authorized_category (covered by the signature)",
)
def plugins_sign(package: Path, key_path: Path, out_path: Path | None, category: str | None) -> None:
    """Sign a package with a private key, as `dify signature sign` does: writes PKG.signed.difypkg."""
    target = out_path or package.with_name(f"{package.name.removesuffix('.difypkg')}.signed.difypkg")
    verification = {"authorized_category": category} if category else None
    try:
        # The signing time is now, as Dify's CLI takes it: this command runs outside any gateway clock.
        signed = sign_package(
            package.read_bytes(), key_path.read_bytes(), int(SystemClock().time()), verification=verification
        )
    except GatewayError as exc:
        fail(exc.message)
    target.write_bytes(signed)
    click.echo(f"wrote {target}")


@plugins.command("debug-key")
@workspace_option()
@click.option("--new", "rotate", is_flag=True, help="Make a new key (the old one stops working for new connections)")
@click.option("--json", "as_json", is_flag=True)
def plugins_debug_key(workspace: str, rotate: bool, as_json: bool) -> None:
    """The address and key a plugin under development connects with (remote debugging).

    The key is shown once, when it is made; only its hash is stored. Run the plugin with
    INSTALL_METHOD=remote REMOTE_INSTALL_URL=ADDRESS REMOTE_INSTALL_KEY=KEY python -m main."""
    settings = load_settings()

    async def action(gw: Gateway) -> dict[str, Any]:
        await gw.workspaces.require(workspace)
        record, key = await gw.plugin_debug.keys.issue(workspace, rotate=rotate)
        return {
            "workspace": workspace,
            "address": _debug_address(gw.settings),
            "key": key,
            "created_at": iso_time(record.created_at),
        }

    def human(result: dict[str, Any]) -> str:
        address = result["address"]
        lines = [
            f"REMOTE_INSTALL_URL={address}"
            if address
            else "GATEWAY_PLUGIN_DEBUG_ADDR is not set: the gateway does not listen for debugging connections"
        ]
        if result["key"]:
            lines.append(f"REMOTE_INSTALL_KEY={result['key']}")
            lines.append("(the key is shown this once; `plugins debug-key --new` makes another)")
        else:
            lines.append(
                f"workspace {result['workspace']} has a debugging key since {result['created_at']}; it is shown "
                "only when made: `plugins debug-key --new` replaces it"
            )
        return "\n".join(lines)

    emit(run(action, settings), as_json, human)


def _debug_address(settings: Settings) -> str | None:
    """host:port as a developer's plugin reaches it (the public host when listening on every address)."""
    address = settings.plugin_debug_address
    if address is None:
        return None
    host, port = address
    if host in ("0.0.0.0", "::", ""):
        host = urlsplit(settings.public_url).hostname or host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
