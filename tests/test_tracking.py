"""The delivery tracker's compact state: packed uuids, exact de-duplication, polls taken in slices."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_commpeak._engine.tracking import CompactUuids, DeliveryTracker, chunked

STATUSES = {"success_statuses": ["delivered"], "failure_statuses": ["undelivered"]}


def uuids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(uuids(30)), st.sampled_from(["id-1", "ID-2", "x"])), max_size=200))
def test_deduplicated_keeps_each_id_once(ids):
    unique = list(CompactUuids(ids).deduplicated())
    assert unique == list(CompactUuids(dict.fromkeys(ids)))  # what the packed list holds, each once


def test_a_million_ids_are_packed_and_deduplicated_without_a_set_of_them():
    ids = CompactUuids(uuids(1_000_000) + uuids(3))
    unique = ids.deduplicated()
    assert (len(ids), len(unique)) == (1_000_003, 1_000_000)
    assert len(unique._packed) == 16_000_000  # 16 bytes each: no text kept


def test_slices_cover_every_id_once():
    ids = CompactUuids([*uuids(5), "not-a-uuid"])
    assert [len(s) for s in chunked(ids, 2)] == [2, 2, 2]
    assert [u for s in chunked(ids, 4) for u in s] == list(ids)


def test_a_poll_in_slices_settles_what_one_answer_would():
    whole, sliced = DeliveryTracker(uuids(7), **STATUSES), DeliveryTracker(uuids(7), **STATUSES)
    answer = dict(
        zip(uuids(7), ["delivered", "sent", "undelivered", "delivered", "sent", "bogus", "delivered"], strict=True)
    )
    whole.update(answer)
    poll = sliced.poll()
    for part in chunked(sliced.pending, 3):
        poll.take(part, {u: answer[u] for u in part})
    assert sliced.snapshot.pending == 7  # nothing changes until the round finishes
    poll.finish()
    for tracker in (whole, sliced):
        assert tracker.snapshot.summary() == {
            "total": 7,
            "succeeded": 3,
            "failed": 1,
            "pending": 3,
            "counts": {"delivered": 3, "undelivered": 1, "sent": 2, "bogus": 1},
            "failed_uuids": [uuids(7)[2]],
        }
    assert list(sliced.pending) == [uuids(7)[i] for i in (1, 4, 5)]


def test_kept_statuses_follow_each_poll():
    tracker = DeliveryTracker(uuids(2), keep_statuses=True, **STATUSES)
    assert tracker.snapshot.statuses == dict.fromkeys(uuids(2), "unknown")
    tracker.update({uuids(2)[0]: "delivered"})
    assert tracker.snapshot.statuses == {uuids(2)[0]: "delivered", uuids(2)[1]: "unknown"}
