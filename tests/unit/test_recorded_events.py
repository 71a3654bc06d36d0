"""plait.testing.recorded_events: the events emitted inside a block, and only those."""

from plait.plugins import emit
from plait.testing import recorded_events


def test_records_the_events_inside_the_block_in_order_and_stops_after():
    emit("before", source="test")
    with recorded_events() as events:
        emit("first", source="test", n=1)
        emit("second", source="test", n=2)
    emit("after", source="test")
    assert [(event.kind, event.data) for event in events] == [("first", {"n": 1}), ("second", {"n": 2})]
