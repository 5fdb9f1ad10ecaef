"""Secret-bearing fields of a job payload, encrypted at rest and bound to their job.

A job's payload stays in the store until its retention runs out; interaction tokens, Slack
`response_url`s and callback URLs in it are credentials. `seal` encrypts the named fields with the
gateway's `SecretBox`, bound to the job id and the field name (a sealed value copied into another
job does not open); `unseal` opens them for the run. A value stored before sealing existed
(plaintext) is passed through, so jobs queued by an older version still run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from gateway.security.crypto import SecretBox, is_encrypted

__all__ = ["seal", "unseal"]


def _context(job_id: str, field: str) -> str:
    return f"job:{job_id}:{field}"


def seal(box: SecretBox, job_id: str, data: Mapping[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """`data` with the string values of `fields` encrypted for job `job_id`."""
    return {
        name: box.encrypt(value, context=_context(job_id, name)) if name in fields and isinstance(value, str) else value
        for name, value in data.items()
    }


def unseal(box: SecretBox, job_id: str, data: Mapping[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """`data` with the sealed values of `fields` decrypted (`ConfigurationError` if one can't be)."""
    return {
        name: box.decrypt(value, context=_context(job_id, name)) if name in fields and is_encrypted(value) else value
        for name, value in data.items()
    }
