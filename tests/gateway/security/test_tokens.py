"""Endpoint URL tokens (security.md §5)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse

import pytest

from gateway.exceptions import ConfigurationError
from gateway.security.crypto import derive_key
from gateway.security.tokens import MAX_TOKEN_CHARS, TOKEN_PURPOSE, EndpointTokens, digest, short_hash

OLD = b"o" * 32
NEW = b"n" * 32
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{22}")


@pytest.fixture
def tokens() -> EndpointTokens:
    return EndpointTokens([OLD, NEW])


def test_mint_shape_entropy_and_url_safety(tokens: EndpointTokens) -> None:
    minted = {tokens.mint() for _ in range(500)}
    assert len(minted) == 500
    for token in minted:
        assert TOKEN_SHAPE.fullmatch(token), token
        assert urllib.parse.quote(token, safe="") == token  # nothing to escape in a URL path
        assert len(base64.urlsafe_b64decode(token.split(".")[0])) == 18  # 144 random bits
        assert tokens.is_authentic(token)


def test_tag_is_hmac_under_a_derived_key_not_the_master_key(tokens: EndpointTokens) -> None:
    random_part, tag = tokens.mint().split(".")
    derived = derive_key(NEW, TOKEN_PURPOSE)
    expected = hmac.new(derived, random_part.encode(), hashlib.sha256).digest()[:16]
    assert base64.urlsafe_b64decode(tag + "==") == expected
    raw = hmac.new(NEW, random_part.encode(), hashlib.sha256).digest()[:16]
    assert base64.urlsafe_b64decode(tag + "==") != raw


def test_rotation_signs_with_newest_and_accepts_any() -> None:
    old_only, both, new_only = EndpointTokens([OLD]), EndpointTokens([OLD, NEW]), EndpointTokens([NEW])
    legacy = old_only.mint()
    assert both.is_authentic(legacy)  # grace period: old tokens still work
    assert not new_only.is_authentic(legacy)  # old key dropped: old tokens stop
    fresh = both.mint()
    assert new_only.is_authentic(fresh)
    assert not old_only.is_authentic(fresh)


# Minted by the scheme as first released (HMAC-SHA256 under HKDF(OLD), 16 bytes, base64url): URLs
# handed out since must keep working, whatever implements the signature.
RELEASED_TOKEN = "Zm9yLXRoZS1yZWNvcmQtMTIz.HZxNst_aSd76rRJZkPdHfg"


def test_tokens_minted_by_the_released_scheme_still_verify() -> None:
    assert EndpointTokens([OLD]).is_authentic(RELEASED_TOKEN)
    assert EndpointTokens([OLD, NEW]).is_authentic(RELEASED_TOKEN)
    assert not EndpointTokens([OLD, NEW]).signed_with_newest(RELEASED_TOKEN)
    assert not EndpointTokens([NEW]).is_authentic(RELEASED_TOKEN)
    assert not EndpointTokens([OLD]).is_authentic(RELEASED_TOKEN[:-1] + "h")  # one character off


def test_forged_and_foreign_tokens_rejected(tokens: EndpointTokens) -> None:
    foreign = EndpointTokens([b"x" * 32]).mint()
    assert not tokens.is_authentic(foreign)
    good = tokens.mint()
    random_part, tag = good.split(".")
    flipped_tag = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    flipped_random = ("A" if random_part[0] != "A" else "B") + random_part[1:]
    for forged in (f"{random_part}.{flipped_tag}", f"{flipped_random}.{tag}", f"{random_part}.{tag.swapcase()}"):
        if forged != good:
            assert not tokens.is_authentic(forged), forged


def header_vectors(good: str) -> list[object]:
    random_part, tag = good.split(".")
    return [
        None,
        b"",
        good.encode(),  # bytes are not tokens
        "",
        "   ",
        ".",
        good[:-1],  # truncated
        good + "A",  # one extra character
        good + ".",
        "." + good,
        good.replace(".", ""),
        good.replace(".", ".."),
        good.replace(".", "~"),
        f"{random_part}.{tag}.{tag}",
        f"{random_part[:21]}.{tag}",  # random part under 128 bits
        f"{random_part}.{tag[:-1]}=",  # padding where none belongs
        f"{random_part[:-1]}+.{tag}",  # standard base64 characters
        f"{random_part[:-1]}/.{tag}",
        f"{random_part}.{tag[:-1]}\xe9",  # non-ASCII
        f"{random_part}.{tag[:-1]}😀",
        f"{random_part}.{tag[:-1]}\x00",  # control characters
        f" {good}",
        f"{good}\n",
        f"{'A' * (MAX_TOKEN_CHARS - 23)}.{tag}",  # one over the length cap
        good * 2000,  # ~94 KiB
        "\ud800" * 10,  # lone surrogates
    ]


def test_malformed_tokens_are_rejected_without_raising(tokens: EndpointTokens) -> None:
    good = tokens.mint()
    for value in header_vectors(good):
        assert tokens.is_authentic(value) is False, repr(value)[:60]  # type: ignore[arg-type]  # deliberately bytes and None too


def test_long_random_part_is_fine_up_to_the_cap(tokens: EndpointTokens) -> None:
    random_part = "A" * (MAX_TOKEN_CHARS - 23)
    # Same derivation as mint(), for a longer random part: accepted while within the cap.
    key = derive_key(NEW, TOKEN_PURPOSE)
    tag = base64.urlsafe_b64encode(hmac.new(key, random_part.encode(), hashlib.sha256).digest()[:16])
    token = f"{random_part}.{tag.rstrip(b'=').decode()}"
    assert len(token) == MAX_TOKEN_CHARS
    assert tokens.is_authentic(token)
    assert not tokens.is_authentic("A" + token)


def test_digest_and_short_hash(tokens: EndpointTokens) -> None:
    token = tokens.mint()
    assert digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert tokens.digest(token) == digest(token)  # also reachable from an instance
    assert EndpointTokens.short_hash(token) == short_hash(token) == digest(token)[:8]
    assert len(digest("\ud800é😀")) == 64  # never raises, whatever the text
    assert digest(token) != digest(tokens.mint())


@pytest.mark.parametrize("keys", [[], [b"short"], [OLD, b"x" * 15], ["a-str-key-that-is-long-enough!!"]])
def test_bad_key_configuration(keys: list[bytes]) -> None:
    with pytest.raises(ConfigurationError):
        EndpointTokens(keys)


def test_repr_hides_keys(tokens: EndpointTokens) -> None:
    text = repr(tokens)
    assert "oooo" not in text and "nnnn" not in text and "2 key(s)" in text
