"""Tasks an object owns: started, kept, supervised, stopped.

    self.tasks = supervisor.group("publisher")
    self.tasks.start("periodic", self._periodic, beat_s=30)   # restarted if it raises
    self.tasks.beat("periodic")                                # from inside its loop
    self.tasks.spawn(self._one_shot())                         # kept until it ends
    self.tasks.stop()                                          # cancels every one

A long-lived task that raises is logged once with its traceback (the same failure again is
counted, not printed again), counted (`Supervisor.failures`, health `task_failures`) and
started again after a backoff: 1 s, doubling to 60 s, back to 1 s once it has run for 60 s.
A MemoryError collects the heap first. A task given beat_s must call beat() at least every
beat_s seconds; one that does not (nor fails and restarts) is stuck, and stuck() names it:
the node stops feeding the watchdog, so a hung service resets the board while one that keeps
failing degrades and retries without a reset loop. (mqtt_as keeps its tasks the same way.)
"""
import asyncio
import gc
import sys
from time import ticks_diff, ticks_ms

from . import log

BACKOFF_MIN_MS = 1000
BACKOFF_MAX_MS = 60000
STEADY_MS = 60000          # a task that ran this long without failing starts its backoff anew


class Supervisor:
    """Every group of tasks of the node, for the watchdog and health."""

    def __init__(self):
        self.groups = []
        self.failures = 0
        self.last = None       # "group.task: MemoryError(...)" of the newest failure

    def group(self, name):
        g = Tasks(name, self)
        self.groups.append(g)
        return g

    def stuck(self):
        """Names of supervised tasks that neither beat nor restarted in time."""
        now = ticks_ms()
        return [n for g in self.groups for n in g.stuck(now)]

    def report(self):
        """{"group.task": failures} of every task that failed (health, tests)."""
        return dict(("%s.%s" % (g.name, n), e.failures) for g in self.groups
                    for n, e in g._long.items() if e.failures)

    def stop(self):
        for g in self.groups:
            g.stop()


class _Entry:
    __slots__ = ("task", "beat_ms", "beat", "failures", "last_error")

    def __init__(self, beat_s):
        self.task = None
        self.beat_ms = beat_s * 1000 if beat_s else 0
        self.beat = ticks_ms()
        self.failures = 0
        self.last_error = None


class Tasks:
    def __init__(self, name, supervisor=None):
        self.name = name
        self.sup = supervisor
        self._long = {}
        self._once = []

    def start(self, name, fn, beat_s=None):
        """Run fn() (a coroutine function) as a supervised task until it returns; returns
        the task (the running one if name runs already)."""
        e = self._long.get(name)
        if e is None:
            e = self._long[name] = _Entry(beat_s)
        elif e.task is not None and not e.task.done():
            return e.task
        e.task = asyncio.create_task(self._keep(name, fn, e))
        return e.task

    def beat(self, name):
        """name is alive (a no-op where it is not a supervised task of this group: a wait
        shared by a task and a one-off caller)."""
        e = self._long.get(name)
        if e is not None:
            e.beat = ticks_ms()

    def spawn(self, coro):
        """A short task (one command, one message): kept until it ends, a failure logged."""
        self._once = [t for t in self._once if not t.done()]
        t = asyncio.create_task(self._once_(coro))
        self._once.append(t)
        return t

    async def _once_(self, coro):
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - seen, counted, never lost silently
            self._failed("(one-shot)", exc, None)

    async def _keep(self, name, fn, e):
        delay = BACKOFF_MIN_MS
        while True:
            t0 = e.beat = ticks_ms()
            try:
                await fn()
                return                                      # it finished: not restarted
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - MemoryError included
                if ticks_diff(ticks_ms(), t0) >= STEADY_MS:
                    delay = BACKOFF_MIN_MS
                if isinstance(exc, MemoryError):
                    gc.collect()                            # room to log it
                self._failed(name, exc, e, delay)
            await asyncio.sleep_ms(delay)
            e.beat = ticks_ms()                             # a restart is progress
            delay = min(delay * 2, BACKOFF_MAX_MS)

    def _failed(self, name, exc, e, delay=0):
        what = "%s.%s" % (self.name, name)
        text = "%s: %r" % (what, exc)
        if self.sup is not None:
            self.sup.failures += 1
            self.sup.last = text
        if e is not None:
            e.failures += 1
            again = e.last_error == repr(exc)
            e.last_error = repr(exc)
        else:
            again = False
        if again:
            log.error("task", "%s failed again (%d times); restarting in %d ms", what,
                      e.failures, delay)
            return
        log.error("task", "%s failed: %r%s", what, exc,
                  "; restarting in %d ms" % delay if e is not None else "")
        sys.print_exception(exc)

    def stuck(self, now):
        return ["%s.%s" % (self.name, n) for n, e in self._long.items()
                if e.beat_ms and e.task is not None and not e.task.done()
                and ticks_diff(now, e.beat) > e.beat_ms]

    def failures(self, name):
        return self._long[name].failures

    def stop(self):
        for e in self._long.values():
            if e.task is not None and not e.task.done():
                e.task.cancel()
        for t in self._once:
            if not t.done():
                t.cancel()
        self._once = []
