"""How many rows one execution takes, for jobs whose rows split (``split_rows``): measured on the
jobs' own runs.

A model's time a row depends on the rows one execution takes: too few and each run's own cost
shows, too many and its activations outgrow the caches (the example conv on this project's
2-core machine, two single-thread sessions side by side: ~65,000 images/s in runs of 64-256
rows, ~55,000 in runs of 1,365).
Which size is fastest depends on the model, the machine and what runs beside it, so a worker
measures it on the work itself, nothing spent on probing: the sizes a job may run in double
from SMALLEST_RUN up to the job's own rows (at once); runs start at FIRST_RUN and climb to
whichever neighbouring size (half, double) runs faster a row, each size measured for MEASURE_MS
before it is compared; once settled, one run in REVISIT goes to a neighbour, so the choice
follows the machine (older measurements fade with HALF_LIFE_MS of the size's own runs).
"""

from collections.abc import Hashable
from dataclasses import dataclass, field

#: the fewest rows a run takes (a job of no more rows runs at once); sizes double from it
SMALLEST_RUN = 16
#: the size the runs start at, before anything is measured
FIRST_RUN = 64
#: execution time a size gathers before it is compared, ms
MEASURE_MS = 30.0
#: a larger size within this share of the fastest a row counts as fast (fewer runs, fewer
#: per-run costs)
TOLERANCE = 0.03
#: once settled, one run in this many measures a neighbouring size again
REVISIT = 8
#: a size's older runs weigh half once it has executed this much more, ms
HALF_LIFE_MS = 200.0
#: model and input signatures remembered (the least recently used forgotten first)
MAX_KEYS = 256


@dataclass
class _Sizes:
    """One key's measurements: per size, decayed milliseconds and rows executed."""

    totals: dict[int, list[float]] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)  #: sizes the model refused to run
    whole: bool = False  #: the model's outputs do not keep a run's rows: jobs run at once
    best: int = FIRST_RUN
    runs: int = 0
    revisited: int = 0  #: neighbours revisited: alternates half and double

    def measured(self, size: int) -> float:
        return self.totals.get(size, [0.0, 0.0])[0]

    def per_row(self, size: int) -> float:
        ms, rows = self.totals[size]
        return ms / rows

    def sizes(self, job_rows: int) -> list[int]:
        return [s for s in _sizes(job_rows) if s not in self.refused or s == job_rows]


class RunSizes:
    """Per key (a model and its inputs' dtypes and trailing dims): the size the next run takes."""

    def __init__(self) -> None:
        self._keys: dict[Hashable, _Sizes] = {}

    def next(self, key: Hashable, job_rows: int, left: int) -> int:
        """Rows of the next run of a job of ``job_rows`` rows with ``left`` still to run."""
        state = self._state(key)
        if state.whole:
            return left
        state.runs += 1
        sizes = state.sizes(job_rows)
        here = _nearest(sizes, state.best)
        near = _neighbours(sizes, here)
        unmeasured = [s for s in (here, *near) if state.measured(s) < MEASURE_MS]
        if unmeasured:
            size = min(unmeasured, key=state.measured)
        elif near and state.runs % REVISIT == 0:
            state.revisited += 1
            size = near[state.revisited % len(near)]
        else:
            size = here
        return min(size, left)

    def record(self, key: Hashable, job_rows: int, rows: int, ms: float) -> None:
        """A run of ``rows`` rows of a job of ``job_rows`` executed in ``ms``; the best size
        moves to a neighbour that runs faster a row."""
        state = self._state(key)
        totals = state.totals.setdefault(rows, [0.0, 0.0])
        fade = 0.5 ** (ms / HALF_LIFE_MS)
        totals[0] = totals[0] * fade + ms
        totals[1] = totals[1] * fade + rows
        sizes = state.sizes(job_rows)
        here = _nearest(sizes, state.best)
        compared = [s for s in (here, *_neighbours(sizes, here)) if state.measured(s) >= MEASURE_MS]
        if compared:
            fastest = min(state.per_row(s) for s in compared)
            state.best = max(s for s in compared if state.per_row(s) <= fastest * (1 + TOLERANCE))

    def refuse(self, key: Hashable, size: int | None) -> None:
        """The model refused a run of ``size`` rows (None: its outputs do not keep a run's rows,
        so no size will do): runs of it are not tried again."""
        state = self._state(key)
        if size is None:
            state.whole = True
        else:
            state.refused.add(size)

    def best(self, key: Hashable) -> int | None:
        """The size runs of ``key`` settle on now (None: nothing measured)."""
        state = self._keys.get(key)
        return state.best if state is not None and state.totals else None

    def _state(self, key: Hashable) -> _Sizes:
        state = self._keys.pop(key, None) or _Sizes()
        self._keys[key] = state  # the most recently used last
        if len(self._keys) > MAX_KEYS:
            del self._keys[next(iter(self._keys))]
        return state


def _sizes(job_rows: int) -> list[int]:
    """The sizes a job of ``job_rows`` rows may run in: doubling from SMALLEST_RUN, and its own
    rows (at once)."""
    sizes = []
    size = SMALLEST_RUN
    while size < job_rows:
        sizes.append(size)
        size *= 2
    return [*sizes, job_rows]


def _nearest(sizes: list[int], size: int) -> int:
    """The largest of ``sizes`` up to ``size`` (the smallest, if none)."""
    return max((s for s in sizes if s <= size), default=sizes[0])


def _neighbours(sizes: list[int], size: int) -> tuple[int, ...]:
    i = sizes.index(size)
    return tuple(sizes[j] for j in (i - 1, i + 1) if 0 <= j < len(sizes))
