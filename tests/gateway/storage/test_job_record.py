"""The Job record's (de)serialisation helpers, which every backend's enqueue goes through."""

from __future__ import annotations

import dataclasses

from gateway.storage.base import Job, prepare_enqueue


def _full_job() -> Job:
    """A job with every field set away from its default."""
    return Job(
        id="job_1",
        kind="plugin",
        payload={"a": 1},
        key="k",
        endpoint_id="ep_1",
        state="running",
        attempts=3,
        max_attempts=5,
        due_at=12.5,
        lease_owner="w1",
        lease_until=99.0,
        last_error="boom",
        result={"ok": True},
        created_at=10.0,
        updated_at=11.0,
        meta={"m": "x"},
    )


def test_to_dict_and_from_dict_cover_every_field() -> None:
    job = _full_job()
    data = job.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(Job)}
    assert Job.from_dict({**data, "unknown": 1}) == job


def test_prepare_enqueue_keeps_every_field_but_the_state_and_lease() -> None:
    job = _full_job()
    new = prepare_enqueue(job, now=50.0)
    assert (new.state, new.lease_owner, new.lease_until) == ("queued", None, None)
    reset = {"state", "lease_owner", "lease_until"}
    for f in dataclasses.fields(Job):
        if f.name not in reset:
            assert getattr(new, f.name) == getattr(job, f.name), f.name


def test_prepare_enqueue_stamps_unset_times_with_now() -> None:
    new = prepare_enqueue(Job(id="job_2", kind="k", payload={}), now=50.0)
    assert (new.created_at, new.updated_at) == (50.0, 50.0)


def test_job_ids_drawn_in_bulk_are_unique_and_well_shaped() -> None:
    from gateway.jobs.queue import JobIds

    ids = JobIds()
    drawn = [ids(1_700_000_000.0) for _ in range(1_000)]  # several draws of the random pool, one millisecond
    assert len(set(drawn)) == len(drawn)
    for job_id in drawn:
        assert job_id.startswith("job_18bcfe56800") and len(job_id) == len("job_") + 11 + 20
        int(job_id[4:], 16)
    assert len({job_id[-20:] for job_id in drawn}) == len(drawn)  # the random part alone tells them apart


def test_job_ids_ascend_with_the_time_they_are_made_at() -> None:
    """Later ids sort after earlier ones (a millisecond apart or more), so new jobs append to the id
    index; times before the epoch still give well-shaped ids."""
    from gateway.jobs.queue import JobIds

    ids = JobIds()
    times = [1_700_000_000.0 + i / 1000 for i in range(300)] + [4_000_000_000.0]
    made = [ids(t) for t in times]
    assert made == sorted(made)
    assert int(ids(0.0)[4:15], 16) == 0 and len(ids(-1.0)) == len(made[0])


def test_json_dumps_writes_every_value_as_the_encoder_does() -> None:
    """Scalars take a short cut past the encoder's set-up; the text is the encoder's, byte for byte,
    and subclasses (an IntEnum, a str subclass) still go through the encoder."""
    import enum
    import json
    import math

    import pytest

    from gateway.storage.base import json_dumps

    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    values = ['é \u2028 "q" \\ \n \x00', "", 0, -7, 2**80, True, False, None, 1.0, 1e16, -0.0, 5e-324]
    values += [math.pi, Level.HIGH, Name("n"), {}, [], {"a": [1, "x", None, 2.5]}]
    for value in values:
        assert json_dumps(value) == encoder.encode(value), value
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="not JSON compliant"):
            json_dumps(bad)
