"""How big a stage's batches are and how long the worker waits to fill one: learnt from the stage.

A batch has a cost of its own besides its events' (fetching and decoding it, producing the outputs
and waiting for the broker's acknowledgement: ~10 ms on the embedded broker), and a backend call may
cost the same for one case as for many (an LLM endpoint answers a batch's requests concurrently). So
fixed small batches are wrong both ways: a fast stage pays the per-batch cost every few events, and an
endpoint-bound stage leaves the endpoint's concurrency idle. :class:`AdaptiveBatching` measures the
cost per event of the batches it gets (the time from one batch to the next, divided by its events)
and:

- **size**: when a batch came full (there was more input waiting), it tries twice the size, and goes
  on doubling while each doubling lowered the cost per event by at least :attr:`gain`; it goes back
  when the larger size costs clearly more (by :attr:`gain`), and otherwise stays (timings on shared
  cores are noisy). Between ``min_size`` (the stage's own batch size) and ``max_size``; it does not
  grow a batch that would take longer than :attr:`max_batch_s` to process.
- **linger**: once the input pauses, it waits :attr:`linger_fraction` of a batch's usual processing
  time for more (bounded by ``[min_linger_s, max_wait_s]``): next to a 5-second endpoint call,
  waiting 250 ms to fill the batch is cheap; next to a 1-millisecond fold it is not, so a fast stage
  takes what is there.
- **max_wait_s**: a batch's first event never waits longer than this (the stage's ``batch_within_s``).

Pure logic: the worker (:mod:`bus.worker`) feeds it the timings and asks it what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AdaptiveBatching:
    min_size: int
    max_size: int
    max_wait_s: float
    min_linger_s: float = 0.002
    linger_fraction: float = 0.05
    gain: float = 0.1  # a larger batch must cut the cost per event by this share to be kept
    max_batch_s: float = 30.0
    smoothing: float = 0.5  # weight of the newest measurement in the running averages
    size: int = 0
    batch_s: float = 0.0  # running average of a batch's processing time
    cost: dict[int, float] = field(default_factory=dict)  # running cost per event (s) by batch size
    batches: int = 0
    _grown_from: list[int] = field(default_factory=list)  # the sizes grown from, newest last

    def __post_init__(self) -> None:
        if self.min_size < 1 or self.max_size < self.min_size:
            raise ValueError(f"batch sizes must satisfy 1 <= min ({self.min_size}) <= max ({self.max_size})")
        self.size = self.size or self.min_size
        if not self.min_size <= self.size <= self.max_size:
            raise ValueError(
                f"the first batch size {self.size} is outside [{self.min_size}, {self.max_size}]"
            )

    @property
    def linger_s(self) -> float:
        """How long to wait for more input after it pauses, before processing what is buffered."""
        return min(self.max_wait_s, max(self.min_linger_s, self.linger_fraction * self.batch_s))

    def _average(self, old: float | None, new: float) -> float:
        return new if old is None else self.smoothing * new + (1 - self.smoothing) * old

    def observe(self, events: int, process_s: float, cycle_s: float) -> int:
        """Record a batch of ``events`` that the stage processed in ``process_s`` and that took
        ``cycle_s`` from its start to the next batch's (decode, process, publish, acknowledge); returns
        the size of the next batch."""
        if events <= 0:
            return self.size
        self.batches += 1
        self.batch_s = self._average(self.batch_s if self.batches > 1 else None, process_s)
        size = self.size
        full = events >= size
        if full:  # only a full batch says what this size costs (a partial one ran out of input)
            self.cost[size] = self._average(self.cost.get(size), cycle_s / events)
        smaller = self._grown_from[-1] if self._grown_from else None
        if (
            smaller is not None
            and size in self.cost
            and self.cost[size] > self.cost[smaller] * (1 + self.gain)
        ):
            self.size = self._grown_from.pop()  # the larger batches cost clearly more: go back
            return self.size
        # Grow after a full batch if the last growth paid (or none was tried yet); measurements on
        # shared cores are noisy, so a size is left only for one that is clearly better or worse.
        paid = smaller is None or (
            size in self.cost and self.cost[size] < self.cost[smaller] * (1 - self.gain)
        )
        larger = min(self.max_size, size * 2)
        if full and paid and larger > size and process_s * 2 <= self.max_batch_s:
            known = self.cost.get(larger)
            if known is None or known < self.cost[size] * (1 - self.gain):
                self._grown_from.append(size)
                self.size = larger
        return self.size
