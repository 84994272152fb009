"""How a worker picks the rows a run takes for jobs whose rows split: a model's cost a row as a
function of the run size stands in for the engine, so every step is deterministic."""

from worker.runs import FIRST_RUN, MEASURE_MS, REVISIT, SMALLEST_RUN, RunSizes, _sizes

JOB = 1280  # rows a job, as `aclq batch` sizes them


def cost_with_best_at(best: int):
    """ms a row for runs of ``size`` rows: a per-run cost that small runs pay, and a cost that
    grows past ``best`` (activations outgrowing the caches); slowest far from ``best``."""
    return lambda size: 0.03 + 0.5 / size + max(0, size - best) * 0.0001


def settle(sizes: RunSizes, cost, jobs: int) -> list[int]:
    """Run ``jobs`` jobs of JOB rows; the run sizes taken, in order."""
    taken = []
    for _ in range(jobs):
        left = JOB
        while left:
            size = sizes.next("m", JOB, left)
            sizes.record("m", JOB, size, size * cost(size))
            taken.append(size)
            left -= size
    return taken


def test_the_sizes_double_from_the_smallest_up_to_the_job_itself():
    assert _sizes(100) == [16, 32, 64, 100]
    assert _sizes(JOB) == [16, 32, 64, 128, 256, 512, 1024, JOB]
    assert _sizes(SMALLEST_RUN) == [SMALLEST_RUN]


def test_runs_start_at_the_first_size_and_climb_to_the_fastest_a_row():
    sizes = RunSizes()
    assert sizes.best("m") is None
    assert sizes.next("m", JOB, JOB) == FIRST_RUN
    taken = settle(sizes, cost_with_best_at(256), jobs=40)
    assert sizes.best("m") == 256
    # settled: most runs take the best size; one in REVISIT measures a neighbour again
    last = taken[-100:]
    assert last.count(256) >= len(last) * (1 - 2 / REVISIT)
    assert set(last) <= {128, 256, 512}


def test_a_larger_size_within_the_tolerance_is_taken():
    sizes = RunSizes()
    settle(sizes, lambda size: 0.05, jobs=30)  # every size as fast a row: fewer runs win
    assert sizes.best("m") == JOB  # the job at once


def test_the_choice_follows_the_machine():
    """Once a size slows (something else now shares the caches), fading measurements and
    revisited neighbours move the runs to the size that is fastest now."""
    sizes = RunSizes()
    settle(sizes, cost_with_best_at(512), jobs=40)
    assert sizes.best("m") == 512
    settle(sizes, cost_with_best_at(64), jobs=200)
    assert sizes.best("m") == 64


def test_a_size_is_compared_only_once_measured():
    sizes = RunSizes()
    sizes.record("m", JOB, FIRST_RUN, MEASURE_MS)  # 64 rows in 30 ms
    sizes.record("m", JOB, FIRST_RUN // 2, MEASURE_MS / 4)  # 32 rows in 7.5 ms: faster a row, measured too little
    assert sizes.best("m") == FIRST_RUN
    assert sizes.next("m", JOB, JOB) == FIRST_RUN * 2  # the least measured of it and its neighbours next
    for _ in range(5):  # ~30 ms of 32-row runs, older ones faded
        sizes.record("m", JOB, FIRST_RUN // 2, MEASURE_MS / 4)
    assert sizes.best("m") == FIRST_RUN // 2


def test_each_model_and_signature_is_measured_apart_and_runs_never_pass_what_is_left():
    sizes = RunSizes()
    settle(sizes, cost_with_best_at(512), jobs=40)
    assert sizes.best("other") is None and sizes.next("other", JOB, JOB) == FIRST_RUN
    assert sizes.next("m", JOB, 100) <= 100


def test_a_refused_size_is_not_tried_again_and_a_model_that_does_not_split_runs_jobs_at_once():
    sizes = RunSizes()
    sizes.refuse("m", FIRST_RUN)  # e.g. an .om whose dynamic batch sizes lack it
    taken = settle(sizes, cost_with_best_at(FIRST_RUN), jobs=20)
    assert FIRST_RUN not in taken and sizes.best("m") in (FIRST_RUN // 2, FIRST_RUN * 2)
    sizes.refuse("m", None)  # its outputs do not keep a run's rows
    assert sizes.next("m", JOB, JOB) == JOB and sizes.next("m", JOB, 100) == 100
