"""The emulator's clock skips only time nothing can happen in (emulator/clock.py)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from emulator.clock import VirtualClock


def test_when_every_actor_waits_the_clock_skips_to_the_earliest_deadline():
    woke: list[tuple[str, float]] = []
    with VirtualClock() as clock:
        start, real_start = time.time(), time.monotonic()

        def waiter(name: str, seconds: float) -> None:
            clock.wait(seconds)
            woke.append((name, time.time() - start))

        threads = [clock.Thread(target=waiter, args=("hour", 3600)), clock.Thread(target=waiter, args=("minute", 60))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()  # the test's thread waits on the clock too
        real = time.monotonic() - real_start
        assert datetime.now(timezone.utc).timestamp() - start >= 3600  # every clock in the process moved
    # Each woke at its own time, in deadline order, and no real hour went by
    assert [name for name, _ in woke] == ["minute", "hour"]
    assert 60 <= woke[0][1] < 3600 <= woke[1][1] < 3600 + 30
    assert real < 30
    assert clock.skipped >= 3600 - 30


def test_a_busy_actor_keeps_the_clock_at_its_normal_rate():
    with VirtualClock() as clock:
        start = time.time()
        waited: list[float] = []
        waiter = clock.Thread(target=lambda: (clock.wait(0.5), waited.append(time.time() - start)))
        busy = clock.Thread(target=lambda: time.sleep(0.3))  # work the clock cannot see into
        busy.start()
        waiter.start()
        busy.join()
        waiter.join()
    # While the busy actor ran, nothing was skipped: the waiter woke half a second after it began
    assert 0.5 <= waited[0] < 0.5 + 5
    assert clock.skipped < 0.5 - 0.3 + 0.05


def test_an_event_set_by_another_actor_wakes_the_waiter_before_its_deadline():
    with VirtualClock() as clock:
        event = clock.event()
        start = time.time()
        outcome: list[tuple[bool, float]] = []
        waiter = clock.Thread(target=lambda: outcome.append((event.wait(600), time.time() - start)))
        waiter.start()
        setter = clock.Thread(target=lambda: (time.sleep(0.05), event.set()))
        setter.start()
        setter.join()
        waiter.join()
    assert outcome[0][0] is True and outcome[0][1] < 600


def test_a_hold_keeps_the_clock_from_skipping():
    with VirtualClock() as clock:
        held = threading.Event()
        held.set()
        clock.hold(held.is_set)
        start = time.time()
        waiter = clock.Thread(target=lambda: clock.wait(0.3))
        waiter.start()
        waiter.join()
        assert time.time() - start < 5 and clock.skipped == 0
        held.clear()
        waiter = clock.Thread(target=lambda: clock.wait(3600))
        waiter.start()
        waiter.join()
        assert clock.skipped >= 3600 - 30


def test_a_started_thread_counts_as_busy_until_its_target_returns():
    # (It counts from start(), before it is scheduled: a run that starts another, e.g. StartExecution
    # from a Lambda, never looks idle in between.)
    with VirtualClock() as clock:
        child_started = threading.Event()
        release = threading.Event()

        def child() -> None:
            child_started.set()
            release.wait()  # busy, on a plain (real) event

        waiter = clock.Thread(target=lambda: clock.wait(3600))
        waiter.start()
        worker = clock.Thread(target=child)
        worker.start()
        child_started.wait()
        clock.wait(real_s=0.2)  # the test's thread waits on the clock too: only the child is busy
        assert clock.skipped == 0  # the waiter is still waiting its hour, on the wall clock
        release.set()
        worker.join()
        waiter.join()
        assert clock.skipped > 3000
