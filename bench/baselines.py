"""Each chat platform's usual Python framework doing the verification and the ack alone (nothing
durable): the baselines of bench_discord / bench_telegram / bench_lark.

    python bench/baselines.py --install     # once: the frameworks in their own venv, bench/.venv-baselines

The frameworks pin other versions of pydantic and websockets than the gateway's, so they live in
their own venv (with the gateway's uvicorn, starlette, uvloop, httptools, aiohttp and PyNaCl
versions); the benchmarks start a baseline with `start(platform, port, *secrets)`, which re-runs
this file under that venv's python (`--serve platform port secrets...`).

- discord: the reference interactions endpoint: a Starlette app under uvicorn that checks the
  Ed25519 signature with `discord_interactions.verify_key` (PyNaCl), answers PING with PONG and
  an APPLICATION_COMMAND with the deferred response (type 5).
- telegram: aiogram 3's webhook: `SimpleRequestHandler(dispatcher, bot, secret_token=...)` on
  aiohttp's web server (how aiogram bots take webhooks; on uvloop, as the gateway's uvicorn), a
  Dispatcher with a message handler that does nothing.
- lark: lark-oapi's `EventDispatcherHandler` (Encrypt Key + Verification Token: decrypts, checks
  the token and the signature) with a `p2_im_message_receive_v1` handler that does nothing. The
  SDK's only adapter is Flask's (sync), so a Starlette handler under uvicorn hands it the raw
  request as that adapter does (`RawRequest`: path, Title-Case headers, body) and answers its
  `RawResponse`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["PATHS", "python", "start"]

HERE = Path(__file__).resolve()
VENV = HERE.parent / ".venv-baselines"
# The gateway venv's server stack, so both sides run the same uvicorn, parser and loop.
SAME_AS_GATEWAY = ("uvicorn", "starlette", "uvloop", "httptools", "aiohttp", "PyNaCl")
FRAMEWORKS = ("discord-interactions", "aiogram>=3,<4", "lark-oapi")


def python() -> Path:
    exe = VENV / "bin" / "python"
    if not exe.exists():
        raise SystemExit(f"the baseline frameworks are not installed: run `python {HERE.name} --install` first")
    return exe


def install() -> None:
    from importlib.metadata import version

    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pins = [f"{name}=={version(name)}" for name in SAME_AS_GATEWAY]
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *pins, *FRAMEWORKS], check=True)
    print(f"installed: {', '.join(FRAMEWORKS)} in {VENV}")


def start(platform: str, port: int, *secrets: str) -> subprocess.Popen[bytes]:
    """The baseline server for `platform` on 127.0.0.1:`port` (its health check answers GET /)."""
    return subprocess.Popen([str(python()), str(HERE), "--serve", platform, str(port), *secrets])


# -- the servers (run under the baselines venv) ----------------------------------------------------


def serve_discord(port: int, public_key: str) -> None:
    import json

    import uvicorn
    from discord_interactions import (  # type: ignore[import-not-found]  # the baselines venv only
        InteractionResponseType,
        InteractionType,
        verify_key,
    )
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def interactions(request: Request) -> Response:
        body = await request.body()
        signature = request.headers.get("x-signature-ed25519")
        timestamp = request.headers.get("x-signature-timestamp")
        if signature is None or timestamp is None or not verify_key(body, signature, timestamp, public_key):
            return Response("Bad request signature", status_code=401)
        interaction = json.loads(body)
        if interaction.get("type") == InteractionType.PING:
            return JSONResponse({"type": InteractionResponseType.PONG})
        return JSONResponse({"type": InteractionResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE})

    async def health(request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/interactions", interactions, methods=["POST"]), Route("/", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_telegram(port: int, bot_token: str, secret_token: str) -> None:
    import uvloop

    # The baselines venv only:
    from aiogram import Bot, Dispatcher  # type: ignore[import-not-found]
    from aiogram.types import Message  # type: ignore[import-not-found]
    from aiogram.webhook.aiohttp_server import (  # type: ignore[import-not-found]
        SimpleRequestHandler,
        setup_application,
    )
    from aiohttp import web

    async def on_message(message: Message) -> None:
        return None

    dispatcher = Dispatcher()
    dispatcher.message.register(on_message)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def application() -> web.Application:
        bot = Bot(token=bot_token)
        app = web.Application()
        app.router.add_get("/", health)
        SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token=secret_token).register(app, path="/webhook")
        setup_application(app, dispatcher, bot=bot)
        return app

    uvloop.install()
    web.run_app(application(), host="127.0.0.1", port=port, print=None, access_log=None)


def serve_lark(port: int, encrypt_key: str, verification_token: str) -> None:
    import lark_oapi as lark  # type: ignore[import-not-found]  # the baselines venv only
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def on_message(data: lark.im.v1.P2ImMessageReceiveV1) -> None:
        return None

    dispatcher = (
        lark.EventDispatcherHandler.builder(encrypt_key, verification_token)
        .register_p2_im_message_receive_v1(on_message)
        .build()
    )

    async def events(request: Request) -> Response:
        raw = lark.RawRequest()
        raw.uri = request.url.path
        raw.headers = {name.title(): value for name, value in request.headers.items()}
        raw.body = await request.body()
        answer = dispatcher.do(raw)
        return Response(answer.content, status_code=answer.status_code, headers=answer.headers)

    async def health(request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/events", events, methods=["POST"]), Route("/", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


PATHS = {"discord": "/interactions", "telegram": "/webhook", "lark": "/events"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--install", action="store_true", help=f"install the frameworks into {VENV.name} and exit")
    parser.add_argument("--serve", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.install:
        return install()
    if not args.serve:
        parser.error("--install or --serve PLATFORM PORT SECRETS...")
    platform, port, *secrets = args.serve
    serve = {"discord": serve_discord, "telegram": serve_telegram, "lark": serve_lark}[platform]
    serve(int(port), *secrets)  # type: ignore[operator]


if __name__ == "__main__":
    main()
