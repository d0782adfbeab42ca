"""Process-wide runtime settings for the services: the cyclic garbage collector, and crash reports.

Every event read from Kafka becomes a few dozen short-lived Python objects (the decoded record, the
models, their lists). With CPython's default thresholds the collector runs after every 700 net new
container objects and, every tenth and hundredth time, walks the older generations too: everything
the process imported and holds. In a decode-heavy loop that doubled the cost of reading an event
(measured in benchmarks/codec_replay.py: ~17k events/s per CPU-second with the defaults, ~34k with
these settings, same events). The services therefore move what start-up allocated out of the
collector's sight (``gc.freeze``) and collect the young generation less often; the collector still
runs, so reference cycles are still freed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc

# Young generation: collected after this many net new container objects (CPython's default: 700).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> tuple[int, int, int]:
    """Freeze what is alive now and set the collector's thresholds; returns the thresholds set."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return thresholds


def report_native_crashes() -> None:
    """On a crash in native code (SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL: torch, tokenizers, Arrow,
    LanceDB), print every thread's Python stack to stderr before the process dies.

    A service that dies of a signal otherwise leaves only its exit code (-11) and the last line it
    logged; the stacks say which call crashed, and in which thread (the trainer trains in a worker
    thread while the event loop runs).
    """
    if faulthandler.is_enabled():
        return
    # Without a file descriptor behind stderr (closed, None, or a stream in memory, as under a
    # test runner's capture) there is nowhere to write a report: the command runs without one.
    with contextlib.suppress(RuntimeError, ValueError, OSError, AttributeError):
        faulthandler.enable(all_threads=True)
