"""Security primitives: signature checks, URL tokens, secrets at rest and outbound URL safety.

`signatures`, `tokens` and `crypto` are pure (no I/O, no logging); `ssrf` resolves names and
owns the pinned outbound HTTP transport. The rules they implement are in security.md.
"""
