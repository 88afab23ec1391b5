"""The endpoint metrics behind the dashboard's state widget and the "endpoint stuck" alarm."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import endpoint_wait

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def test_minutes_in_transition_count_from_the_last_change():
    creating = {
        "EndpointStatus": "Creating",
        "CreationTime": NOW - timedelta(minutes=50),
        "LastModifiedTime": NOW - timedelta(minutes=42, seconds=30),
    }
    assert endpoint_wait.minutes_in_transition(creating, NOW) == 42.5
    updating = {**creating, "EndpointStatus": "Updating"}
    assert endpoint_wait.minutes_in_transition(updating, NOW) == 42.5


def test_settled_endpoints_are_not_in_transition():
    for status in ("InService", "Failed", "OutOfService", "Deleting"):
        assert (
            endpoint_wait.minutes_in_transition(
                {"EndpointStatus": status, "LastModifiedTime": NOW - timedelta(hours=3)}, NOW
            )
            is None
        )


def test_in_service_is_one_only_when_serving():
    assert [endpoint_wait.in_service(s) for s in ("InService", "Creating", "Updating", "Failed")] == [1, 0, 0, 0]


class _Recorder:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def put_item(self, **kwargs):
        self.calls.append(("put_item", kwargs))

    def describe_endpoint(self, EndpointName):
        return self.answer

    def send_task_success(self, **kwargs):
        self.calls.append(("send_task_success", kwargs))


def test_park_hands_the_description_to_the_metrics_hook():
    answer = {"EndpointStatus": "Creating", "LastModifiedTime": NOW}
    fake = _Recorder(answer)
    seen = []
    woken = endpoint_wait.park(fake, fake, fake, table="t", endpoint="e", token="tok", on_described=seen.append)
    assert (woken, seen) == (False, [answer])
