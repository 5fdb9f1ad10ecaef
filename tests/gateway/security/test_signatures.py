"""Signature checks against security.md §1 (header vectors), §3 (timestamps) and the real libraries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

from gateway.security import signatures as sig
from gateway.security.signatures import (
    Ed25519Key,
    check_timestamp,
    hmac_sha256_hex,
    new_webhook_secret,
    parse_ed25519_public_key,
    parse_webhook_secret,
    sign_standard_webhook,
    slack_signature,
    standard_webhook_headers,
    verify_discord,
    verify_ed25519,
    verify_hmac_hex,
    verify_slack,
    verify_standard_webhook,
)

NOW = 1_700_000_000
TS = str(NOW)
SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&text=hello+%C3%A9"
# Odd spacing and key order: must verify over the raw bytes, never re-serialized JSON.
ODD_BODY = b'{ "type" :"event_callback",\n  "b": [ 2 ,1 ],"a":{"z":1 ,"y" : "\\u00e9"}  }\n'


def header_vectors(good: str, scheme: str) -> list[str | bytes | None]:
    """security.md §1 header value vectors, derived from a valid value `good` with prefix `scheme`."""
    payload = good[len(scheme) :]
    # Standard Webhooks headers are space-separated lists, so surrounding spaces are fine there.
    padded = [] if scheme == "v1," else [" " + good, good + " "]
    return [
        *padded,
        None,
        "",
        "   ",
        "\t",
        scheme,  # right scheme, empty value
        good[:-1],  # truncated by one character
        good + "0",  # one extra character
        good + "=",
        "x" + good[1:],  # different prefix
        "v9" + good[2:],
        payload if scheme else "00" + good,  # no prefix at all
        scheme + payload.upper(),  # uppercase where lowercase is expected
        scheme + "g" * len(payload),  # non-hex / non-base64 characters
        scheme + payload[:-1] + "!",
        scheme + payload[:-2],  # odd-length hex, or base64 with bad padding
        scheme + payload.rstrip("=") if "=" in payload else scheme + payload[:-3],
        scheme + payload[:-1] + "\xe9",  # non-ASCII (latin-1 decoded byte)
        good[:-1] + "\xe9",
        scheme + payload[:-1] + "😀",  # non-latin-1: can't come off the wire
        scheme + payload[:-1] + "\x00",  # control characters
        good + "\r\n",
        good.encode("latin-1") + b"\xff",  # raw bytes forms
        b"",
        good * 1500,  # ~64 KiB: refused by length, no quadratic work
        (scheme + "a" * (64 * 1024)).encode("ascii"),
    ]


def _assert_all_rejected(verify: Callable[[str | bytes | None], bool], good: str, scheme: str) -> None:
    assert verify(good) is True
    assert verify(good.encode("latin-1")) is True  # raw header bytes work too
    for value in header_vectors(good, scheme):
        assert verify(value) is False, repr(value)[:80]


# -- timestamps (§3) --------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [-300, -1, 0, 1, 300])
def test_timestamp_window_accepts_inclusive_both_directions(delta: int) -> None:
    assert check_timestamp(str(NOW + delta), NOW) is True
    assert check_timestamp(str(NOW + delta).encode(), NOW) is True


@pytest.mark.parametrize("delta", [-301, 301, -100_000, 100_000])
def test_timestamp_window_rejects_outside(delta: int) -> None:
    assert check_timestamp(str(NOW + delta), NOW) is False


def test_timestamp_tolerance_is_configurable() -> None:
    assert check_timestamp(str(NOW - 60), NOW, tolerance_s=60) is True
    assert check_timestamp(str(NOW - 61), NOW, tolerance_s=60) is False
    assert check_timestamp(TS, NOW + 0.5, tolerance_s=0) is False


BAD_TIMESTAMPS: list[str | bytes | None] = [
    None,
    "",
    "1.5",
    f"{NOW}.9",  # the standardwebhooks library floors this and accepts it
    "abc",
    f" {NOW}",
    f"{NOW} ",
    f"+{NOW}",
    "-1",
    f"-{NOW}",
    "1e9",
    "NaN",
    "nan",
    "inf",
    "Infinity",
    "1" * 30,  # overflow
    "1" * 13,
    "１７００００００００",  # full-width digits: int() accepts them
    "1700000000".replace("0", "٠"),  # Arabic-Indic digits
    "²",
    f"{NOW}\n",
    f"{NOW}\x00",
    "0x6553f100",
    "1_700_000_000",
    f"{NOW}\xe9",
    b"\xff" * 10,
]


@pytest.mark.parametrize("value", BAD_TIMESTAMPS)
def test_timestamp_rejects_malformed(value: str | bytes | None) -> None:
    assert check_timestamp(value, NOW) is False
    assert check_timestamp(value, 1.5) is False


def test_timestamp_twelve_digits_is_the_maximum_length() -> None:
    assert check_timestamp("000000000001", 1) is True
    assert check_timestamp("0000000000001", 1) is False


# -- generic HMAC -----------------------------------------------------------------------------


def test_hmac_hex_matches_hmac_module() -> None:
    assert hmac_sha256_hex(SECRET, BODY) == hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_verify_hmac_hex_header_vectors() -> None:
    good = "sha256=" + hmac_sha256_hex(SECRET, BODY)
    _assert_all_rejected(lambda value: verify_hmac_hex(SECRET, BODY, value, prefix="sha256="), good, "sha256=")


def test_verify_hmac_hex_without_prefix_and_wrong_inputs() -> None:
    good = hmac_sha256_hex(SECRET, BODY)
    assert verify_hmac_hex(SECRET, BODY, good) is True
    assert verify_hmac_hex(SECRET, BODY + b" ", good) is False
    assert verify_hmac_hex(b"other-secret", BODY, good) is False
    assert verify_hmac_hex(b"", BODY, hmac_sha256_hex(b"", BODY)) is False  # an empty secret verifies nothing


# -- Slack v0 ---------------------------------------------------------------------------------


def test_slack_signature_matches_slack_sdk() -> None:
    verifier = SignatureVerifier(SECRET.decode())
    theirs = verifier.generate_signature(timestamp=TS, body=BODY)
    assert theirs == slack_signature(SECRET, TS, BODY)
    assert verify_slack(SECRET, TS, theirs, BODY, NOW) is True


def test_slack_sdk_accepts_our_signature() -> None:
    class FixedClock:
        def now(self) -> float:
            return float(NOW)

    verifier = SignatureVerifier(SECRET.decode(), clock=FixedClock())  # type: ignore[arg-type]
    assert verifier.is_valid(body=ODD_BODY, timestamp=TS, signature=slack_signature(SECRET, TS, ODD_BODY))


def test_slack_header_vectors() -> None:
    good = slack_signature(SECRET, TS, BODY)
    _assert_all_rejected(lambda value: verify_slack(SECRET, TS, value, BODY, NOW), good, "v0=")


def test_slack_verifies_raw_bytes_not_reserialized_json() -> None:
    good = slack_signature(SECRET, TS, ODD_BODY)
    assert verify_slack(SECRET, TS, good, ODD_BODY, NOW) is True
    reserialized = json.dumps(json.loads(ODD_BODY)).encode()
    assert verify_slack(SECRET, TS, good, reserialized, NOW) is False


def test_slack_non_utf8_body_verifies_as_bytes() -> None:
    body = b"\xff\xfe payload=\x80"
    assert verify_slack(SECRET, TS, slack_signature(SECRET, TS, body), body, NOW) is True


@pytest.mark.parametrize("delta", [-300, 300])
def test_slack_window_edges_accepted(delta: int) -> None:
    ts = str(NOW + delta)
    assert verify_slack(SECRET, ts, slack_signature(SECRET, ts, BODY), BODY, NOW) is True


@pytest.mark.parametrize("delta", [-301, 301])
def test_slack_window_outside_rejected(delta: int) -> None:
    ts = str(NOW + delta)
    assert verify_slack(SECRET, ts, slack_signature(SECRET, ts, BODY), BODY, NOW) is False


@pytest.mark.parametrize("value", BAD_TIMESTAMPS)
def test_slack_malformed_timestamps_rejected_without_raising(value: str | bytes | None) -> None:
    good = slack_signature(SECRET, TS, BODY)
    assert verify_slack(SECRET, value, good, BODY, NOW) is False


def test_slack_timestamp_is_part_of_the_signature() -> None:
    other = str(NOW + 1)
    assert verify_slack(SECRET, other, slack_signature(SECRET, TS, BODY), BODY, NOW) is False


# -- Discord Ed25519 --------------------------------------------------------------------------

SIGNING_KEY = SigningKey(bytes(range(32)))
PUBLIC_HEX = SIGNING_KEY.verify_key.encode().hex()


def discord_sig(ts: str, body: bytes, key: SigningKey = SIGNING_KEY) -> str:
    return str(key.sign(ts.encode() + body).signature.hex())


def test_discord_pynacl_signature_verifies() -> None:
    assert verify_discord(PUBLIC_HEX, discord_sig(TS, ODD_BODY), TS, ODD_BODY, NOW) is True
    assert verify_discord(PUBLIC_HEX.upper(), discord_sig(TS, ODD_BODY), TS, ODD_BODY, NOW) is True
    reserialized = json.dumps(json.loads(ODD_BODY)).encode()
    assert verify_discord(PUBLIC_HEX, discord_sig(TS, ODD_BODY), TS, reserialized, NOW) is False


def test_discord_header_vectors() -> None:
    good = discord_sig(TS, BODY)
    _assert_all_rejected(lambda value: verify_discord(PUBLIC_HEX, value, TS, BODY, NOW), good, "")


def test_discord_wrong_key_and_timestamp_binding() -> None:
    other = SigningKey(bytes(32 * [7]))
    assert verify_discord(PUBLIC_HEX, discord_sig(TS, BODY, other), TS, BODY, NOW) is False
    assert verify_discord(PUBLIC_HEX, discord_sig(TS, BODY), str(NOW + 1), BODY, NOW) is False


@pytest.mark.parametrize(("delta", "ok"), [(-300, True), (300, True), (-301, False), (301, False)])
def test_discord_replay_window(delta: int, ok: bool) -> None:
    ts = str(NOW + delta)
    assert verify_discord(PUBLIC_HEX, discord_sig(ts, BODY), ts, BODY, NOW) is ok


@pytest.mark.parametrize("value", BAD_TIMESTAMPS)
def test_discord_malformed_timestamps(value: str | bytes | None) -> None:
    assert verify_discord(PUBLIC_HEX, discord_sig(TS, BODY), value, BODY, NOW) is False


@pytest.mark.parametrize(
    "key",
    [
        "",
        "zz" * 32,  # not hex
        PUBLIC_HEX[:-2],  # 31 bytes
        PUBLIC_HEX + "00",  # 33 bytes
        PUBLIC_HEX[:-1],  # odd length
        PUBLIC_HEX[:-1] + "\xe9",
        "0x" + PUBLIC_HEX[2:],
    ],
)
def test_malformed_stored_key_is_a_config_error_and_never_verifies(key: str) -> None:
    with pytest.raises(ValueError, match="64 hex characters"):
        parse_ed25519_public_key(key)
    assert verify_ed25519(key, discord_sig(TS, BODY), TS.encode() + BODY) is False


def test_parse_public_key_accepts_surrounding_whitespace_and_rejects_non_str() -> None:
    assert parse_ed25519_public_key(f"  {PUBLIC_HEX}\n") == bytes.fromhex(PUBLIC_HEX)
    with pytest.raises(ValueError):
        parse_ed25519_public_key(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 63, 65])
def test_ed25519_signature_of_wrong_byte_length(length: int) -> None:
    assert verify_ed25519(PUBLIC_HEX, "ab" * length, TS.encode() + BODY) is False


def test_ed25519_small_order_key_forgery_rejected() -> None:
    # The identity point with R = identity, S = 0 "verifies" any message in naive implementations.
    identity = "01" + "00" * 31
    assert verify_ed25519(identity, identity + "00" * 32, b"anything") is False
    assert verify_ed25519("00" * 32, "00" * 64, b"anything") is False


# Ed25519's group order: a signature whose S is S + L verifies in lax implementations (malleable).
_L = 2**252 + 27742317777372353535851937790883648493


def _malleated(signature_hex: str) -> str:
    raw = bytes.fromhex(signature_hex)
    s = int.from_bytes(raw[32:], "little") + _L
    return (raw[:32] + s.to_bytes(32, "little")).hex()


def _pynacl_accepts(public_hex: str, signature_hex: str, message: bytes) -> bool:
    try:
        VerifyKey(bytes.fromhex(public_hex)).verify(message, bytes.fromhex(signature_hex))
    except BadSignatureError:
        return False
    return True


def _key_and_signature_vectors() -> list[tuple[str, str, bytes, bool]]:
    """(public key, signature, message, valid): a good one, malleated ones, small-order and
    non-canonical keys."""
    message = TS.encode() + ODD_BODY
    good = discord_sig(TS, ODD_BODY)
    identity = "01" + "00" * 31
    p = 2**255 - 19
    return [
        (PUBLIC_HEX, good, message, True),
        (PUBLIC_HEX, _malleated(good), message, False),  # S + L: same R, non-canonical S
        (PUBLIC_HEX, good[:64] + "ff" * 32, message, False),  # S far above L
        (PUBLIC_HEX, good, message + b" ", False),
        (identity, identity + "00" * 32, b"anything", False),  # small-order key, R = identity, S = 0
        ("00" * 32, "00" * 64, b"anything", False),
        ("ec" + "ff" * 30 + "7f", identity + "00" * 32, b"anything", False),  # y = p - 1 (order 2)
        ((p + 1).to_bytes(32, "little").hex(), identity + "00" * 32, b"anything", False),  # y = 1 as p + 1
        ((p + 1).to_bytes(32, "little").hex(), good, message, False),
    ]


@pytest.mark.parametrize(("public_hex", "signature", "message", "valid"), _key_and_signature_vectors())
def test_ed25519_key_decides_as_pynacl_on_malleable_and_small_order_inputs(
    public_hex: str, signature: str, message: bytes, valid: bool
) -> None:
    assert _pynacl_accepts(public_hex, signature, message) is valid
    key = Ed25519Key(public_hex)
    assert key.verify(signature, message) is valid
    assert key.verify(signature.encode("ascii"), message) is valid
    assert verify_ed25519(public_hex, signature, message) is valid


def test_ed25519_key_is_decoded_once_and_verifies_like_the_hex_key() -> None:
    key = Ed25519Key(f" {PUBLIC_HEX.upper()}\n")
    assert key.hex == PUBLIC_HEX and repr(key) == f"Ed25519Key({PUBLIC_HEX!r})"
    # `verify_ed25519` (the hex key) decodes into an `Ed25519Key` too: each outcome is stated, not compared.
    cases = [
        (TS, ODD_BODY, NOW, True),
        (TS, BODY, NOW, True),
        (str(NOW - 301), BODY, NOW, False),
        (TS, BODY, NOW + 1, True),
    ]
    for ts, body, now, valid in cases:
        signature = discord_sig(ts, body)
        assert verify_discord(PUBLIC_HEX, signature, ts, body, now) is valid
        assert verify_discord(key, signature, ts, body, now) is valid
        assert verify_discord(key, signature.upper(), ts, body, now) is False  # lowercase hex only, as before
    other = SigningKey(bytes(32 * [7]))
    assert verify_discord(key, discord_sig(TS, BODY, other), TS, BODY, NOW) is False


def test_ed25519_key_header_vectors_and_malformed_keys() -> None:
    key = Ed25519Key(PUBLIC_HEX)
    _assert_all_rejected(lambda value: verify_discord(key, value, TS, BODY, NOW), discord_sig(TS, BODY), "")
    for bad in ["", "zz" * 32, PUBLIC_HEX[:-2], PUBLIC_HEX + "00", "0x" + PUBLIC_HEX[2:]]:
        with pytest.raises(ValueError, match="64 hex characters"):
            Ed25519Key(bad)


# -- Standard Webhooks ------------------------------------------------------------------------

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = parse_webhook_secret(WHSEC)
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"


def test_parse_and_new_webhook_secret() -> None:
    assert KEY == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert parse_webhook_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == KEY  # prefix optional
    fresh = new_webhook_secret()
    assert fresh.startswith("whsec_") and len(parse_webhook_secret(fresh)) == 32
    assert fresh != new_webhook_secret()
    unpadded = base64.b64encode(b"k" * 32).decode().rstrip("=")
    assert parse_webhook_secret(unpadded) == b"k" * 32


@pytest.mark.parametrize(
    "junk",
    ["", "whsec_", "whsec_!!!!", "whsec_abc$", "whsec_" + "é" * 40, "whsec_YWJj", "whsec_" + "A" * 100, "whsec_a"],
)
def test_parse_webhook_secret_junk(junk: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        parse_webhook_secret(junk)


def test_standardwebhooks_library_signature_verifies_with_ours() -> None:
    hook = Webhook(WHSEC)
    stamp = datetime.fromtimestamp(NOW, tz=UTC)
    theirs = hook.sign(MSG_ID, stamp, ODD_BODY.decode())
    assert theirs == sign_standard_webhook(KEY, MSG_ID, NOW, ODD_BODY)
    assert verify_standard_webhook([KEY], MSG_ID, TS, theirs, ODD_BODY, NOW) is True
    reserialized = json.dumps(json.loads(ODD_BODY)).encode()
    assert verify_standard_webhook([KEY], MSG_ID, TS, theirs, reserialized, NOW) is False


def test_our_headers_verify_with_standardwebhooks_library() -> None:
    now = int(time.time())  # the library reads the real clock
    old, new = parse_webhook_secret(new_webhook_secret()), KEY
    headers = standard_webhook_headers([old, new], MSG_ID, now, ODD_BODY)
    assert headers["webhook-id"] == MSG_ID and headers["webhook-timestamp"] == str(now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(WHSEC).verify(ODD_BODY, headers) == json.loads(ODD_BODY)  # rotation: new key alone
    assert Webhook(base64.b64encode(old).decode()).verify(ODD_BODY, headers) == json.loads(ODD_BODY)


def test_float_timestamp_accepted_by_library_is_rejected_by_us() -> None:
    stamp = datetime.fromtimestamp(NOW + 0.9, tz=UTC)
    signature = Webhook(WHSEC).sign(MSG_ID, stamp, BODY.decode())  # floors to NOW
    assert verify_standard_webhook([KEY], MSG_ID, TS, signature, BODY, NOW) is True
    assert verify_standard_webhook([KEY], MSG_ID, f"{TS}.9", signature, BODY, NOW) is False


def test_standard_webhook_header_vectors() -> None:
    good = sign_standard_webhook(KEY, MSG_ID, NOW, BODY)
    _assert_all_rejected(lambda value: verify_standard_webhook([KEY], MSG_ID, TS, value, BODY, NOW), good, "v1,")


def test_standard_webhook_lists() -> None:
    good = sign_standard_webhook(KEY, MSG_ID, NOW, BODY)
    payload = good[3:]

    def ok(header: str) -> bool:
        return verify_standard_webhook([KEY], MSG_ID, TS, header, BODY, NOW)

    assert ok(f"v1,{'A' * 44} v1a,{payload} v1 {good}") is True  # one valid entry among invalid ones
    assert ok(f"v2,{payload} v1a,{payload}") is False  # only unknown versions
    assert ok("v1") is False  # no comma (standardwebhooks 1.1.0 raises ValueError here)
    assert ok(f"v1 {good}") is True
    assert ok(f"  {good}  ") is True  # repeated spaces are just separators
    assert ok(f"V1,{payload}") is False
    assert ok(f"v1,,{payload}") is False
    assert ok(f"v1,{payload},") is False
    assert ok(f"v1,{payload}\tv1,x") is False  # only spaces separate entries
    assert ok(" ".join(["v1,x"] * 64 + [good])) is False  # more than 64 entries: refused outright
    assert ok(" ".join(["v1,x"] * 63 + [good])) is True


def test_standard_webhook_rotation_accepts_any_secret() -> None:
    other = b"o" * 32
    header = sign_standard_webhook(other, MSG_ID, NOW, BODY)
    assert verify_standard_webhook([KEY, other], MSG_ID, TS, header, BODY, NOW) is True
    assert verify_standard_webhook([KEY], MSG_ID, TS, header, BODY, NOW) is False
    assert verify_standard_webhook([], MSG_ID, TS, header, BODY, NOW) is False
    empty_key_mac = hmac.new(b"", f"{MSG_ID}.{TS}.".encode() + BODY, hashlib.sha256).digest()
    empty_key_sig = "v1," + base64.b64encode(empty_key_mac).decode()
    assert verify_standard_webhook([b""], MSG_ID, TS, empty_key_sig, BODY, NOW) is False  # empty keys are skipped


@pytest.mark.parametrize(("delta", "ok"), [(-300, True), (300, True), (-301, False), (301, False)])
def test_standard_webhook_window(delta: int, ok: bool) -> None:
    good = sign_standard_webhook(KEY, MSG_ID, NOW + delta, BODY)
    assert verify_standard_webhook([KEY], MSG_ID, str(NOW + delta), good, BODY, NOW) is ok


@pytest.mark.parametrize("value", BAD_TIMESTAMPS)
def test_standard_webhook_malformed_timestamps(value: str | bytes | None) -> None:
    good = sign_standard_webhook(KEY, MSG_ID, NOW, BODY)
    assert verify_standard_webhook([KEY], MSG_ID, value, good, BODY, NOW) is False


@pytest.mark.parametrize("msg_id", [None, "", " ", "msg.1", "msg 1", "msg_\xe9", "msg_😀", "m" * 257, b"", "msg\n"])
def test_standard_webhook_bad_ids_rejected(msg_id: str | bytes | None) -> None:
    # Sign over the raw id so only the id rule (not a MAC mismatch) can reject it.
    raw = msg_id.encode("utf-8") if isinstance(msg_id, str) else (msg_id or b"")
    mac = hmac.new(KEY, raw + f".{TS}.".encode() + BODY, hashlib.sha256).digest()
    header = "v1," + base64.b64encode(mac).decode()
    assert verify_standard_webhook([KEY], msg_id, TS, header, BODY, NOW) is False


def test_standard_webhook_id_binding_and_bytes_inputs() -> None:
    good = sign_standard_webhook(KEY, MSG_ID, NOW, BODY)
    assert verify_standard_webhook([KEY], "msg_other", TS, good, BODY, NOW) is False
    assert verify_standard_webhook([KEY], MSG_ID.encode(), TS.encode(), good.encode(), BODY, NOW) is True
    assert verify_standard_webhook([KEY], "m" * 256, TS, sign_standard_webhook(KEY, "m" * 256, NOW, BODY), BODY, NOW)
    assert verify_standard_webhook([KEY], MSG_ID, TS, None, BODY, NOW) is False


@pytest.mark.parametrize(
    ("secret", "msg_id", "timestamp", "match"),
    [
        (KEY, "msg.1", NOW, "webhook id"),
        (KEY, "", NOW, "webhook id"),
        (KEY, "msg_é", NOW, "webhook id"),
        (KEY, "m" * 257, NOW, "webhook id"),
        (b"", MSG_ID, NOW, "must not be empty"),
        (KEY, MSG_ID, -1, "negative"),
    ],
)
def test_signing_refuses_unusable_input(secret: bytes, msg_id: str, timestamp: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sign_standard_webhook(secret, msg_id, timestamp, BODY)


def test_headers_need_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        standard_webhook_headers([], MSG_ID, NOW, BODY)


def test_a_signature_header_over_the_exported_size_cap_is_refused() -> None:
    good = sign_standard_webhook(KEY, MSG_ID, NOW, BODY)

    def header(size: int) -> str:  # a junk entry, then the valid one: `size` bytes in all
        return "v1," + "A" * (size - len(good) - 4) + " " + good

    at_cap, over = header(sig.MAX_HEADER_BYTES), header(sig.MAX_HEADER_BYTES + 1)
    assert len(at_cap) == sig.MAX_HEADER_BYTES and len(over) == sig.MAX_HEADER_BYTES + 1
    assert verify_standard_webhook([KEY], MSG_ID, TS, at_cap, BODY, NOW) is True
    assert verify_standard_webhook([KEY], MSG_ID, TS, over, BODY, NOW) is False
