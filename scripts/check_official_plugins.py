"""Run Dify's official endpoint plugins, unmodified, through the gateway against the Dify simulator.

    python scripts/check_official_plugins.py /path/to/dify-official-plugins [--only slack_bot ...]

Fetches nothing itself: point it at a checkout of langgenius/dify-official-plugins. Every plugin
under `extensions/` whose manifest declares only endpoints is installed the way an operator would
(`dify-gateway plugins install DIR --allow-unsigned`: packed, venv built from its own
requirements), an endpoint is minted for it bound to a simulator app, `dify-gateway serve` runs,
and the plugin is sent the requests its platform would send (Slack's event callbacks signed as
Slack signs them, the openai client, WeCom's encrypted callbacks, a knowledge-retrieval call).
`serve` runs with `HTTPS_PROXY` and `SSL_CERT_FILE` pointing at a fake slack.com made here (the
gateway hands plugin processes its proxy settings), so the Slack bot's post is seen too.
Each plugin ends as `ok`, `refused` (the gateway would not install it, with the reason) or
`FAILED`; the exit status is 1 when any check failed.

Needs a Python >= 3.12 for the plugins (GATEWAY_PLUGIN_PYTHON or found, as `serve` finds it) and
a package index pip can reach (their dependencies: slack-sdk, pycryptodomex, boto3, ...).
Pass `--venvs DIR` to keep the plugin venvs between runs.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import yaml
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "check-admin-" + secrets.token_hex(16)
SLACK_SIGNING_SECRET = "check-signing-" + secrets.token_hex(8)
APP = "assistant"  # the simulator app every endpoint is bound to


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    """The CLI and the served gateway, on one temporary data directory."""

    workdir: Path
    python: str | None
    venvs: Path | None
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(
            GATEWAY_STORE=f"sqlite:///{self.workdir / 'gateway.db'}",
            GATEWAY_ADMIN_TOKEN=ADMIN,
            GATEWAY_SECRET_KEY="check-secret-" + "k" * 40,
            GATEWAY_PUBLIC_URL=self.url,
            GATEWAY_PORT=str(self.port),
            GATEWAY_PLUGIN_DIR=str(self.workdir / "plugins"),
            GATEWAY_LOG_LEVEL="info",
        )
        if self.python:
            env["GATEWAY_PLUGIN_PYTHON"] = self.python
        if self.venvs:
            env["GATEWAY_PLUGIN_VENV_DIR"] = str(self.venvs)
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args], env=self.env(), capture_output=True, text=True, cwd=ROOT
        )

    @contextmanager
    def serving(self, log: Path, **extra: str) -> Iterator[None]:
        with log.open("wb") as out:
            env = {**self.env(), **extra}
            proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=out, stderr=out)
            try:
                wait_up(f"{self.url}/healthz", proc)
                yield
            finally:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({url})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server did not come up: {url}")


@contextmanager
def simulator() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "gateway", "simulate-dify", "--port", str(port)]
    command += ["--mode", "chat", "--answer", "echo", "--first-token-latency", "0", "--tokens-per-second", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


# -- the platforms' side ---------------------------------------------------------------------------


class FakeSlack:
    """slack.com's Web API behind an HTTPS proxy: the plugin processes get `HTTPS_PROXY` and
    `SSL_CERT_FILE` from the gateway's environment (as Dify's daemon passes its proxy), so slack_sdk
    tunnels to this proxy, which answers `chat.postMessage` itself with a certificate for slack.com
    signed by a CA made here, and records what was posted."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.ca_file = workdir / "check-ca.pem"
        self.posted: list[dict[str, Any]] = []
        self._context = self._tls(workdir)
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _tls(self, workdir: Path) -> ssl.SSLContext:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)

        def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: Any) -> Any:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
            builder = x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
            builder = builder.public_key(key.public_key()).serial_number(x509.random_serial_number())
            builder = builder.not_valid_before(now - datetime.timedelta(hours=1))
            builder = builder.not_valid_after(now + datetime.timedelta(days=1))
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            if issuer is None:  # what Python 3.13's strict verification asks of a CA and a leaf
                builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment"), False)
                usage |= dict.fromkeys(("key_agreement", "encipher_only", "decipher_only"), False)
                builder = builder.add_extension(
                    x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage), critical=True
                )
            else:
                builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
                builder = builder.add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
                )
                builder = builder.add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
                )
            return builder.sign(signer, hashes.SHA256())

        ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = certificate("check-official-plugins CA", ca_key, None, ca_key)
        leaf = certificate("slack.com", leaf_key, ca.subject, ca_key)
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        leaf_file = workdir / "slack.pem"
        leaf_file.write_bytes(
            leaf.public_bytes(serialization.Encoding.PEM)
            + leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(leaf_file)
        return context

    def _serve(self) -> None:
        while True:
            conn, _ = self._server.accept()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._exchange(conn)
        except (OSError, ValueError) as exc:  # a client that went away or did not trust us
            print(f"fake Slack: {type(exc).__name__}: {exc}", file=sys.stderr)

    def _exchange(self, conn: socket.socket) -> None:
        with conn:
            head, _ = _read_head(conn)
            if not head.startswith(b"CONNECT slack.com:443 "):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with self._context.wrap_socket(conn, server_side=True) as tls:
                head, rest = _read_head(tls)
                length = int(next((v for k, v in _headers(head) if k == "content-length"), "0"))
                while len(rest) < length:
                    rest += tls.recv(65536)
                line = head.split(b"\r\n", 1)[0].decode()
                headers = dict(_headers(head))
                form = json.loads(rest) if "json" in headers.get("content-type", "") else dict(parse_qsl(rest.decode()))
                self.posted.append({"line": line, "authorization": headers.get("authorization"), "body": form})
                answer = json.dumps({"ok": True, "channel": form.get("channel"), "ts": "1700000000.000100"}).encode()
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _headers(head: bytes) -> list[tuple[str, str]]:
    out = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        out.append((name.strip().lower(), value.strip()))
    return out


def slack_post(client: httpx.Client, url: str, payload: dict[str, Any], **headers: str) -> httpx.Response:
    """POST `payload` as Slack's Events API does: JSON, signed with the app's signing secret."""
    body = json.dumps(payload)
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SLACK_SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    signed = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature or ""}
    return client.post(url, content=body, headers={"Content-Type": "application/json", **signed, **headers})


class WeComCrypto:
    """Enterprise WeChat's callback encryption (AES-256-CBC, key = base64(EncodingAESKey + "="),
    IV = its first 16 bytes, PKCS#7 to 32-byte blocks; SHA-1 signature over the sorted token,
    timestamp, nonce and ciphertext), the platform's side of it."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str = "") -> None:
        self.token = token
        self.key = base64.b64decode(encoding_aes_key + "=")
        self.receive_id = receive_id.encode()

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def sign(self, timestamp: str, nonce: str, ciphertext: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, ciphertext])).encode()).hexdigest()  # noqa: S324  (WeCom's scheme)

    def encrypt(self, plain: bytes) -> str:
        data = secrets.token_bytes(16) + struct.pack("!I", len(plain)) + plain + self.receive_id
        pad = 32 - len(data) % 32
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()).decode()

    def decrypt(self, ciphertext: str) -> bytes:
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(base64.b64decode(ciphertext)) + decryptor.finalize()
        content = plain[16 : -plain[-1]]
        (length,) = struct.unpack("!I", content[:4])
        return content[4 : 4 + length]


# -- one check per plugin --------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    settings: dict[str, str]
    run: Callable[[httpx.Client, str, FakeSlack], list[str]]  # (client, endpoint URL, Slack) -> what was seen


def check_slack_bot(client: httpx.Client, url: str, slack: FakeSlack) -> list[str]:
    seen = []
    challenge = slack_post(client, url, {"type": "url_verification", "challenge": "c-123", "token": "t"})
    expect(challenge.status_code == 200, f"url_verification: {challenge.status_code} {challenge.text[:200]}")
    expect(challenge.json() == {"challenge": "c-123"}, f"url_verification answered {challenge.text[:200]}")
    seen.append("url_verification challenge answered")
    retried = slack_post(client, url, {"type": "event_callback"}, **{"X-Slack-Retry-Num": "1"})
    expect(retried.status_code == 200 and retried.text == "ok", f"a retry: {retried.status_code} {retried.text}")
    seen.append("Slack's retry acknowledged without an answer (allow_retry=false)")
    mention = {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": "Ev1",
        "event": {"type": "app_mention", "user": "U1", "text": "<@UBOT> hello there", "channel": "C1", "ts": "1.2"},
    }
    answered = slack_post(client, url, mention)
    expect(answered.status_code == 200, f"app_mention: {answered.status_code} {answered.text[:300]}")
    expect(len(slack.posted) == 1, f"nothing reached Slack; the plugin answered: {answered.text[:600]}")
    posted = slack.posted[0]
    expect(posted["line"].startswith("POST /api/chat.postMessage "), f"Slack was sent {posted['line']}")
    expect(posted["authorization"] == "Bearer xoxb-check", "the bot token did not reach Slack")
    expect(posted["body"].get("channel") == "C1", f"posted to {posted['body'].get('channel')}")
    expect("hello there" in str(posted["body"].get("text")), f"posted {posted['body'].get('text')!r}")
    seen.append(f"app_mention: the app's answer was posted to Slack (through the proxy): {posted['body']['text']!r}")
    if not answered.headers.get("content-type", "").startswith("application/json"):
        # slack_bot answers the event with json.dumps(SlackResponse), which is not serialisable: its
        # own except turns that into a 200 apology (Slack ignores the body). Same inside Dify.
        seen.append("(the plugin's own answer to the event is its apology text: json.dumps(SlackResponse) fails)")
    return seen


def check_openai_compatible(client: httpx.Client, url: str, slack: FakeSlack) -> list[str]:
    import openai

    seen = []
    api = openai.OpenAI(base_url=url, api_key="sk-check", max_retries=0)
    wrong = openai.OpenAI(base_url=url, api_key="sk-wrong", max_retries=0)
    reply = api.chat.completions.create(model="dify", messages=[{"role": "user", "content": "hello there"}])
    content = reply.choices[0].message.content or ""
    expect("hello there" in content, f"blocking answer {content!r}")
    seen.append(f"blocking chat completion: {content!r}")
    stream = api.chat.completions.create(
        model="dify", messages=[{"role": "user", "content": "stream please"}], stream=True
    )
    parts = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    expect("stream please" in "".join(parts) and len(parts) > 1, f"streamed answer {parts!r}")
    seen.append(f"streamed chat completion in {len(parts)} chunks")
    try:
        wrong.chat.completions.create(model="dify", messages=[{"role": "user", "content": "hi"}])
    except openai.AuthenticationError:
        seen.append("a wrong API key is the plugin's 401")
    else:
        raise CheckFailed("a wrong API key was accepted")
    return seen


WECOM_TOKEN = "checktoken"
WECOM_KEY = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def check_wecom_bot(client: httpx.Client, url: str, slack: FakeSlack) -> list[str]:
    seen = []
    crypto = WeComCrypto(WECOM_TOKEN, WECOM_KEY)
    timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
    echostr = crypto.encrypt(b"echo-4711")
    verify = client.get(
        url,
        params={
            "msg_signature": crypto.sign(timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        },
    )
    expect(verify.status_code == 200 and verify.text == "echo-4711", f"URL verification: {verify.text[:200]}")
    seen.append("URL verification (encrypted echostr) answered")

    def send(payload: dict[str, Any]) -> dict[str, Any]:
        encrypted = crypto.encrypt(json.dumps(payload).encode())
        query = {"msg_signature": crypto.sign(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
        answer = client.post(url, params=query, json={"encrypt": encrypted})
        expect(answer.status_code == 200, f"callback: {answer.status_code} {answer.text[:300]}")
        body = answer.json()
        expect(body["msgsignature"] == crypto.sign(str(body["timestamp"]), body["nonce"], body["encrypt"]), "signature")
        stream: dict[str, Any] = json.loads(crypto.decrypt(body["encrypt"]))["stream"]
        return stream

    message = {"msgid": "m-1", "msgtype": "text", "chattype": "single", "text": {"content": "hello wecom"}}
    first = send(message)
    expect(first["finish"] is True and "hello wecom" in first["content"], f"answer {first}")
    seen.append(f"encrypted text message answered by the app: {first['content']!r}")
    again = send(message)
    expect(again["finish"] is False, f"a repeated message id was answered again: {again}")
    seen.append("a repeated msgid is recognised (plugin storage in the gateway)")
    polled = send({"msgid": "m-2", "msgtype": "stream", "stream": {"id": "m-1"}})
    expect(polled["finish"] is True and "hello wecom" in polled["content"], f"stream poll {polled}")
    seen.append("a stream poll returns the stored answer")
    return seen


def check_retrieval(auth: str | None) -> Callable[[httpx.Client, str, FakeSlack], list[str]]:
    """The External Knowledge API: Dify first probes the endpoint; a probe must answer without the backend."""

    def run(client: httpx.Client, url: str, slack: FakeSlack) -> list[str]:
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        probe = client.post(url + "/retrieval", content=b"", headers=headers)
        expect(probe.status_code == 200, f"the availability probe: {probe.status_code} {probe.text[:200]}")
        seen = ["the availability probe answered 200"]
        if auth:
            refused = client.post(url + "/retrieval", json={"query": "q"}, headers={"Authorization": "Bearer nope"})
            expect(refused.status_code == 403, f"a wrong key: {refused.status_code}")
            seen.append("a wrong key is the plugin's 403")
        return seen

    return run


CHECKS: dict[str, Check] = {
    "slack_bot": Check({"bot_token": "xoxb-check", "allow_retry": "false"}, check_slack_bot),
    "openai_compatible": Check({"api_key": "sk-check", "memory_mode": "last_user_message"}, check_openai_compatible),
    "wecom_bot": Check({"token": WECOM_TOKEN, "encoding_aes_key": WECOM_KEY}, check_wecom_bot),
    "llamacloud": Check({"llama_cloud_api_key": "llx-check", "api_key": "kb-key"}, check_retrieval("kb-key")),
    "aws_bedrock_knowledge_base": Check(
        {"aws_access_key_id": "AKIACHECK", "aws_secret_access_key": "check", "region_name": "us-east-1"},
        check_retrieval(None),
    ),
}


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    plugin: str
    state: str  # ok | refused | FAILED | unchecked
    notes: list[str] = field(default_factory=list)


def endpoint_only(directory: Path) -> bool:
    manifest = yaml.safe_load((directory / "manifest.yaml").read_text(encoding="utf-8"))
    declared = manifest.get("plugins") or {}
    return bool(declared.get("endpoints")) and not any(v for k, v in declared.items() if k != "endpoints")


def plugin_key(directory: Path) -> str:
    manifest = yaml.safe_load((directory / "manifest.yaml").read_text(encoding="utf-8"))
    return f"{manifest['author']}/{manifest['name']}"


def pinned_copy(directory: Path, sdk: str, root: Path) -> Path:
    """A copy of the plugin whose requirements.txt pins `sdk` (its code untouched): how a published
    package differs from the repository (their release job exports requirements.txt from uv.lock)."""
    copy = root / directory.name
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns(".venv", "__pycache__", "requirements.txt"))
    project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    others = [d for d in project.get("dependencies", []) if not re.match(r"dify[-_]plugin\b", d, re.IGNORECASE)]
    (copy / "requirements.txt").write_text("\n".join([sdk, *others]) + "\n", encoding="utf-8")
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a checkout of langgenius/dify-official-plugins")
    parser.add_argument("--only", nargs="*", default=None, help="directory names under extensions/")
    parser.add_argument("--python", default=os.environ.get("GATEWAY_PLUGIN_PYTHON"), help="Python >= 3.12")
    parser.add_argument("--venvs", type=Path, default=None, help="keep the plugin venvs here between runs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (data, logs)")
    parser.add_argument(
        "--sdk",
        default=None,
        help="run them on this SDK (e.g. 'dify_plugin==0.9.0', what their published packages pin): a copy "
        "of each plugin gets a requirements.txt of its own dependencies with this one in place of the SDK's",
    )
    args = parser.parse_args()

    extensions = args.checkout / "extensions"
    if not extensions.is_dir():
        raise SystemExit(f"{args.checkout} has no extensions/ directory")
    candidates = sorted(d for d in extensions.iterdir() if (d / "manifest.yaml").is_file())
    if args.only:
        candidates = [d for d in candidates if d.name in args.only]
    workdir = Path(tempfile.mkdtemp(prefix="check-official-"))
    gateway = Gateway(workdir, args.python, args.venvs)
    outcomes: list[Outcome] = []
    minted: list[tuple[Outcome, str]] = []
    try:
        with simulator() as dify:
            added = gateway.cli("apps", "add", APP, "--base-url", dify, "--key", "app-simulator", "--mode", "chat")
            if added.returncode != 0:
                raise SystemExit(f"apps add failed: {added.stderr}")
            for directory in candidates:
                outcome = Outcome(directory.name, "unchecked")
                outcomes.append(outcome)
                if not endpoint_only(directory):
                    outcome.state, outcome.notes = "skipped", ["declares more than endpoints"]
                    continue
                print(f"installing {directory.name} ...", flush=True)
                source = directory if args.sdk is None else pinned_copy(directory, args.sdk, workdir / "sources")
                installed = gateway.cli("plugins", "install", str(source), "--allow-unsigned")
                if installed.returncode != 0:
                    outcome.state = "refused"
                    outcome.notes.append((installed.stderr or installed.stdout).strip().splitlines()[-1])
                    continue
                outcome.notes.append(installed.stdout.strip().splitlines()[-1])
                check = CHECKS.get(directory.name)
                settings = [f"{k}={v}" for k, v in (check.settings if check else {}).items()]
                created = gateway.cli(
                    "endpoints",
                    "create",
                    "--plugin",
                    plugin_key(directory),
                    "--app",
                    APP,
                    *[arg for s in settings for arg in ("--set", s)],
                    "--json",
                )
                if created.returncode != 0:
                    outcome.state = "FAILED"
                    outcome.notes.append(f"endpoints create: {created.stderr.strip()}")
                    continue
                minted.append((outcome, json.loads(created.stdout)["url"]))
            slack = FakeSlack(workdir)
            # Only `serve` gets them (pip, at install, needs the real index): what the plugins reach goes
            # through the fake Slack's proxy, which trusts nothing but slack.com; the rest stays local.
            outbound = {
                "HTTPS_PROXY": slack.proxy,
                "NO_PROXY": "127.0.0.1,localhost",
                "SSL_CERT_FILE": str(slack.ca_file),
            }
            with gateway.serving(workdir / "gateway.log", **outbound), httpx.Client(timeout=120) as client:
                for outcome, url in minted:
                    check = CHECKS.get(outcome.plugin)
                    if check is None:
                        outcome.notes.append("installed and minted; no platform check written for it")
                        continue
                    print(f"checking {outcome.plugin} ...", flush=True)
                    try:
                        outcome.notes += check.run(client, url, slack)
                        outcome.state = "ok"
                    except (CheckFailed, httpx.HTTPError, KeyError, ValueError) as exc:
                        outcome.state = "FAILED"
                        outcome.notes.append(f"{type(exc).__name__}: {exc}")
                    except Exception as exc:  # a client library's own error (openai, ...)
                        outcome.state = "FAILED"
                        outcome.notes.append(f"{type(exc).__name__}: {exc}")
    finally:
        for outcome in outcomes:
            print(f"\n{outcome.plugin}: {outcome.state}")
            for note in outcome.notes:
                print(f"  - {note}")
        if args.keep:
            print(f"\nwork directory: {workdir} (gateway.log has the plugins' logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(o.state == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
