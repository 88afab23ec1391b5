"""The emulator's clock: wall-clock time that skips ahead when everything the harness runs is waiting.

A training run waits out its quiet window (a Wait state), polls its training job (`.sync`), parks a
task token for the endpoint with a timeout; the simulated training job and endpoint take their
`training_s` / `endpoint_s`. On the wall clock that is seconds of nothing per run. Here:

- Time is the process's wall-clock time (`time.time()`, `datetime.now()`, so moto's
  `$$.State.EnteredTime`, the Lambdas' own `now()` and the simulator all read the same clock),
  plus an offset. time-machine moves the offset forward; nothing ever moves it back.
- An *actor* is a thread the harness knows runs the emulated world: the test's thread, each
  Step Functions execution and the threads moto starts for it, each asynchronous Lambda
  invocation, each simulated endpoint settling. `Thread` (below) counts one from the moment it is
  started until its target returns, so a run never looks idle between "started" and "running".
- An actor *waits on the clock* in `wait()`: a Wait state, a `.sync` poll interval, a retry's
  back-off, a task token with its timeout, a parent joining the thread it started.
- When every actor is waiting on the clock, nothing can happen before the earliest deadline among
  them, so the offset jumps there at once (`skipped` adds up what was skipped). Where an actor is
  busy (a Lambda running, a boto3 call in flight, a test thread doing its own polling) or a `hold`
  says so, time runs at its normal rate: the clock is then exactly the wall clock plus a constant.

What this does not change: the order of events within a run, and every duration a component
reads (a Wait of 2 s still ends 2 s after it began, as read by every clock in the process). Threads
the harness does not know (none run pipeline code today) are not counted; if one ever did work
while every actor waited, the clock could skip ahead under it, which is what a slow thread would
see anyway (emulator/README.md, "Time").
"""

from __future__ import annotations

import math
import threading
import time
import types
from typing import Any, Callable, Optional

import time_machine

# How often (real seconds) a waiting actor checks whether what it waits for happened. Waits end
# through `done()` (an event set, a thread finished), which does not notify the clock's condition.
_POLL_S = 0.01
_DEBUG = bool(__import__("os").environ.get("CLOCK_DEBUG"))


class VirtualClock:
    """See the module docstring. Usable without entering it: then it is the wall clock, never skips."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0
        self._waiting: dict[int, tuple[float, Optional[Callable[[], bool]]]] = {}
        self._holds: list[Callable[[], bool]] = []
        self._local = threading.local()
        self._travel: Optional[Any] = None
        self._coordinates: Optional[Any] = None
        self.skipped = 0.0
        """Seconds the clock skipped ahead (time nothing had to wait for on the wall clock)."""
        self.jumps = 0
        self.Thread = self._thread_class()
        """A `threading.Thread` counted as an actor from start() until its target returns."""
        self.event = self._event_class()
        """A `threading.Event` whose wait(timeout) is a wait on this clock."""

    # ---- lifecycle ----

    def __enter__(self) -> "VirtualClock":
        self._travel = time_machine.travel(time.time(), tick=True)
        self._coordinates = self._travel.start()
        self.join()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.leave()
        assert self._travel is not None
        self._travel.stop()
        self._travel = self._coordinates = None

    @property
    def running(self) -> bool:
        return self._coordinates is not None

    # ---- actors ----

    def join(self) -> None:
        """The calling thread is an actor from now on (the test's own thread)."""
        if not getattr(self._local, "actor", False):
            self._local.actor = True
            with self._cond:
                self._busy += 1

    def leave(self) -> None:
        if getattr(self._local, "actor", False):
            self._local.actor = False
            with self._cond:
                self._busy -= 1
                self._skip_if_idle()

    def hold(self, reason: Callable[[], bool]) -> None:
        """While `reason()` is true the clock never skips (e.g. the simulator's asynchronous
        endpoints, whose queue, scaling and time-outs run on their own ticker)."""
        self._holds.append(reason)

    def _thread_class(self) -> type:
        clock = self

        class Thread(threading.Thread):
            def start(self) -> None:
                with clock._cond:
                    clock._busy += 1
                try:
                    super().start()
                except BaseException:
                    with clock._cond:
                        clock._busy -= 1
                    raise

            def run(self) -> None:
                clock._local.actor = True
                try:
                    super().run()
                finally:
                    clock._local.actor = False
                    with clock._cond:
                        clock._busy -= 1
                        clock._skip_if_idle()

            def join(self, timeout: Optional[float] = None) -> None:
                if self is not threading.current_thread() and self.is_alive():
                    clock.wait(timeout, done=lambda: not self.is_alive())
                    timeout = None if not self.is_alive() else 0
                super().join(timeout)

        return Thread

    def _event_class(self) -> type:
        clock = self

        class Event(threading.Event):
            def wait(self, timeout: Optional[float] = None) -> bool:
                if not self.is_set():
                    clock.wait(timeout, done=self.is_set)
                return self.is_set()

        return Event

    # ---- waiting ----

    def wait(
        self,
        seconds: Optional[float] = None,
        *,
        until: Optional[float] = None,
        done: Optional[Callable[[], bool]] = None,
        real_s: Optional[float] = None,
    ) -> bool:
        """Wait `seconds` (or until the clock reads `until`; neither: no deadline) or until `done()`;
        `real_s` bounds the wait in real seconds whatever the clock does (a test's poll). Returns
        whether `done()` came true."""
        deadline = until if until is not None else (time.time() + seconds if seconds is not None else math.inf)
        real_end = time.monotonic() + real_s if real_s is not None else math.inf
        actor = getattr(self._local, "actor", False)
        me = threading.get_ident()
        with self._cond:
            self._waiting[me] = (deadline, done)
            if actor:
                self._busy -= 1
            try:
                while True:
                    if done is not None and done():
                        return True
                    now = time.time()
                    if now >= deadline or time.monotonic() >= real_end:
                        return False
                    self._skip_if_idle()
                    now = time.time()
                    if now >= deadline:
                        return bool(done and done())
                    self._cond.wait(min(_POLL_S, deadline - now, max(0.0, real_end - time.monotonic())))
            finally:
                del self._waiting[me]
                if actor:
                    self._busy += 1

    def sleep(self, seconds: float) -> None:
        self.wait(max(0.0, seconds))

    def _skip_if_idle(self) -> None:
        """With the condition held: if every actor waits and none is about to wake, jump to the
        earliest deadline."""
        if self._coordinates is None or self._busy > 0 or not self._waiting:
            return
        if any(done is not None and done() for _, done in self._waiting.values()):
            return
        if any(reason() for reason in self._holds):
            return
        target = min(deadline for deadline, _ in self._waiting.values())
        if math.isinf(target):
            return
        delta = target - time.time()
        if delta > 0:
            if _DEBUG:
                names = {t.ident: t.name for t in threading.enumerate()}
                print(
                    f"CLOCKJUMP {delta:.3f}s busy={self._busy} waiting={[names.get(i) for i in self._waiting]}",
                    flush=True,
                )
            self._coordinates.shift(delta)
            self.skipped += delta
            self.jumps += 1
        self._cond.notify_all()

    # ---- for modules that import `threading` / `time` ----

    def threading_module(self) -> types.SimpleNamespace:
        """`threading` as a module sees it, with Thread and Event on this clock."""
        return types.SimpleNamespace(**{**vars(threading), "Thread": self.Thread, "Event": self.event})

    def time_module(self) -> types.SimpleNamespace:
        """`time` as a module sees it, with sleep() on this clock."""
        return types.SimpleNamespace(**{**vars(time), "sleep": self.sleep})
