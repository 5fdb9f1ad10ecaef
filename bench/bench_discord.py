"""Benchmark: the discord plugin's verified interaction acks per second vs the reference Python
interactions endpoint and vs the slack plugin's, in one run.

    python bench/bench_discord.py [--duration 10] [--concurrency 50] [--store sqlite|redis] [--rounds 3]
                                  [--profile stacks.txt]   # py-spy the gateway under the Discord load, round 1

One gateway process (job workers off) with a slack and a discord endpoint; loads alternate
between them, 50 concurrent keep-alive connections over loopback. Each Slack request is a
distinct signed `app_mention` (v0 HMAC checked); each Discord request a distinct `/ask`
APPLICATION_COMMAND interaction signed with Ed25519 (PyNaCl) as Discord signs it. Both durably
enqueue their answer job before answering (Discord: the deferred response, type 5).

The baseline (`bench/baselines.py`; `python bench/baselines.py --install` once): the way an
interactions endpoint is written in Python, a Starlette app under the same uvicorn verifying the
same requests with discord-interactions' `verify_key` (PyNaCl) and answering the deferred
response, nothing durable. Its rounds go first; ratios and CPU per request of both are printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nacl.signing import SigningKey  # noqa: E402

from bench.bench_slack import serve_gateway  # noqa: E402
from bench.plugin_acks import Baseline, add_arguments, compare_with_slack  # noqa: E402

SIGNING_KEY = SigningKey(bytes(range(32)))
PUBLIC_KEY = SIGNING_KEY.verify_key.encode().hex()
APPLICATION_ID = "1100000000000000001"


def interaction(counter: itertools.count[int]) -> tuple[bytes, dict[str, str]]:
    n = next(counter)
    body = json.dumps(
        {
            "id": str(1_200_000_000_000_000_000 + n),
            "application_id": APPLICATION_ID,
            "type": 2,
            "token": f"aW50ZXJhY3Rpb246{n:012d}",
            "version": 1,
            "guild_id": "1300000000000000001",
            "channel_id": "1300000000000000002",
            "member": {"user": {"id": str(1_400_000_000_000_000_000 + n % 50), "username": "ana"}},
            "data": {
                "id": "1500000000000000001",
                "name": "ask",
                "type": 1,
                "options": [{"name": "question", "type": 3, "value": "how fast are you?"}],
            },
        }
    ).encode()
    timestamp = str(int(time.time()))
    signature = SIGNING_KEY.sign(timestamp.encode() + body).signature.hex()
    return body, {
        "content-type": "application/json",
        "x-signature-ed25519": signature,
        "x-signature-timestamp": timestamp,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args()
    if args.serve is not None:
        return serve_gateway(args.serve)
    settings = {"application_id": APPLICATION_ID, "public_key": PUBLIC_KEY, "api_base_url": "http://127.0.0.1:9"}
    baseline = Baseline("discord", (PUBLIC_KEY,), "discord-interactions")
    compare_with_slack(Path(__file__).resolve(), "discord", settings, interaction, args, baseline=baseline)


if __name__ == "__main__":
    main()
