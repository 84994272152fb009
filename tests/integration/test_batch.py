"""`aclq batch` and `client.batch`: every input form, exact failure accounting, resume, window."""

import json
import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import onnxruntime as ort
import pytest

from producer import keys
from producer.batch import (
    AUTO_JOB_BYTES,
    AUTO_OVERHEAD,
    PROBE_PASSES,
    PROBE_ROWS,
    PROBE_TIMED,
    JobSize,
    _ProbeInputs,
    _rounds,
    auto_batch_size,
    choose_transfer,
    plan,
    run,
    run_batch,
)
from producer.status import fetch_status


def mlp_reference(model_repo, x):
    return ort.InferenceSession(str(model_repo / "mlp" / "1" / "model.onnx")).run(None, {"x": x})[0]


@pytest.fixture
def npy_dir(tmp_path):
    rng = np.random.default_rng(7)
    source = tmp_path / "in"
    (source / "nested").mkdir(parents=True)
    arrays = {}
    for i in range(12):
        name = f"nested/{i:02d}.npy" if i % 3 == 0 else f"{i:02d}.npy"
        arrays[name] = rng.standard_normal((i % 4 + 1, 64)).astype(np.float32)
        np.save(source / name, arrays[name])
    return source, arrays


def test_directory_of_npy_files(client, model_repo, npy_dir, tmp_path):
    source, arrays = npy_dir
    summary = run_batch(client, "mlp", source, tmp_path / "out", window=4)
    assert (summary.total, summary.done, summary.failed) == (12, 12, 0)
    assert summary.max_in_flight <= 4 and set(summary.devices) <= {"0", "1"}
    assert summary.latency_p50_ms > 0 and summary.items_per_s > 0
    for name, x in arrays.items():
        with np.load(tmp_path / "out" / name.replace(".npy", ".npz")) as out:
            np.testing.assert_allclose(out["y"], mlp_reference(model_repo, x), rtol=1e-5)


def test_split_array_reassembled_in_input_order(client, model_repo, tmp_path):
    x = np.random.default_rng(8).standard_normal((203, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    summary = run_batch(client, "mlp", tmp_path / "x.npy", tmp_path / "out", batch_size=16, window=3)
    assert (summary.total, summary.done) == (13, 13)
    y = np.load(tmp_path / "out" / "y.npy")
    np.testing.assert_allclose(y, mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)


def test_npz_split_with_two_inputs_and_manifest(client, tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    np.savez(tmp_path / "ab.npz", a=a, b=a * 10)
    # add takes [2, 3] inputs: split with batch size 1 gives [1, 2, 3] -> refused; use the manifest form
    rows = []
    for i in range(4):
        np.save(tmp_path / f"a{i}.npy", a[i])
        np.save(tmp_path / f"b{i}.npy", a[i] * 10)
        rows.append(json.dumps({"id": f"row{i}", "a": f"a{i}.npy", "b": f"b{i}.npy"}))
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n")
    summary = run_batch(client, "add", tmp_path / "m.jsonl", tmp_path / "out")
    assert summary.done == 4
    for i in range(4):
        with np.load(tmp_path / "out" / f"row{i}.npz") as out:
            np.testing.assert_array_equal(out["c"], a[i] * 11)
    mismatched = run_batch(client, "add", tmp_path / "ab.npz", tmp_path / "out2", batch_size=1)
    assert mismatched.failed == 4 and {f.code for f in mismatched.failures} == {100017}


def test_failing_items_reported_exactly(client, npy_dir, tmp_path):
    source, _ = npy_dir
    np.save(source / "05.npy", np.ones((2, 63), np.float32))  # wrong shape
    np.save(source / "07.npy", np.ones((2, 64), np.int64))  # wrong dtype
    (source / "10.npy").write_bytes(b"not an array")  # unreadable
    summary = run_batch(client, "mlp", source, tmp_path / "out", window=4)
    assert (summary.done, summary.failed) == (9, 3)
    assert [(f.item, f.code) for f in summary.failures] == [("05.npy", 100017), ("07.npy", 100017), ("10.npy", 100003)]
    assert "got [2, 63]" in summary.failures[0].message and "got int64" in summary.failures[1].message
    assert not (tmp_path / "out" / "05.npz").exists()


def test_window_is_never_exceeded(client, cluster, tmp_path):
    """Observed from Redis too: jobs queued or running never number more than the window."""
    x = np.ones((64, 64), np.float32)
    for i in range(30):
        np.savez(tmp_path / f"{i:02d}.npz", x=x, iterations=np.array(300))
    most, done = [0], threading.Event()

    def watch() -> None:
        pattern = keys.job_state(cluster.settings.namespace, "*")
        while not done.is_set():
            states = client._redis.mget(list(client._redis.scan_iter(pattern, count=1000)) or ["none"])
            most[0] = max(most[0], sum(state in (b"queued", b"running") for state in states))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        summary = run_batch(client, "slow", tmp_path, tmp_path / "out", window=3)
    finally:
        done.set()
        watcher.join()
    assert summary.done == 30, summary.failures
    assert 1 <= summary.max_in_flight <= 3, summary.max_in_flight  # the runner's own count
    assert 1 <= most[0] <= 3, most[0]  # jobs unanswered in Redis, as seen from outside


def _batch_cli(cluster, source, output, *extra):
    env = {**os.environ, **cluster.settings.to_env()}
    command = [sys.executable, "-m", "producer.cli", "-v", "batch", "--model", "mlp", "--input", str(source),
               "--output", str(output), "--quiet", *extra]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(300)  # thousands of jobs: minutes on a slow machine
def test_resume_after_kill_matches_a_clean_run(cluster, tmp_path):
    rng = np.random.default_rng(9)
    source = tmp_path / "in"
    source.mkdir()
    for i in range(300):
        np.save(source / f"{i:03d}.npy", rng.standard_normal((1, 64)).astype(np.float32))
    with _batch_cli(cluster, source, tmp_path / "clean") as clean:
        out, _ = clean.communicate(timeout=120)
    assert clean.returncode == 0 and json.loads(out)["done"] == 300

    killed = _batch_cli(cluster, source, tmp_path / "resumed", "--window", "2")
    seen = 0
    for line in killed.stderr:  # each finished item logs a line: kill after 20 of them
        seen += line.rstrip().endswith(": done")
        if seen == 20:
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait(30)
    killed.stdout.close()
    killed.stderr.close()
    written = sorted(p.name for p in (tmp_path / "resumed").glob("*.npz"))
    assert 20 <= len(written) < 300
    for name in written:  # every output there is whole: a kill leaves at most temporary files
        with np.load(tmp_path / "resumed" / name) as out:
            assert out["y"].shape == (1, 10)

    with _batch_cli(cluster, source, tmp_path / "resumed", "--resume") as resumed:
        out, _ = resumed.communicate(timeout=120)
    summary = json.loads(out)
    # By reference the workers write the outputs: the jobs in flight when the command was killed
    # (the window's 2 at most) may still land after `written` was listed, and are skipped too.
    assert resumed.returncode == 0 and len(written) <= summary["skipped"] <= len(written) + 2
    assert summary["skipped"] + summary["done"] == 300 and summary["failed"] == 0
    assert not list((tmp_path / "resumed").glob(".*.tmp"))  # the killed run's temporaries are gone
    for i in range(300):
        with np.load(tmp_path / "clean" / f"{i:03d}.npz") as a, np.load(tmp_path / "resumed" / f"{i:03d}.npz") as b:
            np.testing.assert_array_equal(a["y"], b["y"])


def test_cli_exit_status_and_summary_file(cluster, npy_dir, tmp_path):
    source, _ = npy_dir
    np.save(source / "05.npy", np.ones((2, 63), np.float32))
    with _batch_cli(cluster, source, tmp_path / "out") as proc:
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    summary = json.loads(out)
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failures"] == [
        {"item": "05.npy", "code": 100017, "name": "ACL_ERROR_MODEL_INPUT_NOT_MATCH",
         "message": "input 'x' expects shape ['?', 64], got [2, 63]"}
    ]  # fmt: skip


def test_interrupt_stops_cleanly(client, npy_dir, tmp_path):
    source, _ = npy_dir
    stop = threading.Event()
    stop.set()  # as if Ctrl-C came before the first item
    summary = run(client, "mlp", plan(source, tmp_path / "out"), stop=stop, quiet=True)
    assert summary.interrupted and summary.done == 0 and summary.failed == 0


def test_retries_transient_failures_only(client, tmp_path):
    x = np.ones((64, 64), np.float32)
    np.savez(tmp_path / "slow.npz", x=x, iterations=np.array(10**7))  # times out every time
    np.savez(tmp_path / "bad.npz", x=np.ones((64, 63), np.float32), iterations=np.array(1))
    np.savez(tmp_path / "good.npz", x=x, iterations=np.array(2))
    summary = run_batch(client, "slow", tmp_path, tmp_path / "out", retries=2, options={"stream_sync_timeout_ms": 50})
    assert (summary.done, summary.failed) == (1, 2)
    assert summary.retried == 2  # the timeout, twice; the bad input never
    assert [(f.item, f.code) for f in summary.failures] == [("bad.npz", 100017), ("slow.npz", 507046)]


def test_ctrl_c_stops_the_cli_cleanly(cluster, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(400):
        np.save(source / f"{i:03d}.npy", np.ones((1, 64), np.float32))
    proc = _batch_cli(cluster, source, tmp_path / "out", "--window", "1")
    for line in proc.stderr:
        if line.rstrip().endswith(": done"):
            proc.send_signal(signal.SIGINT)
            break
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    summary = json.loads(out)
    assert summary["interrupted"] and 1 <= summary["done"] < 400 and summary["failed"] == 0


def test_cli_without_a_broker_starts_its_own(model_repo, npy_dir, tmp_path):
    source, arrays = npy_dir
    env = {k: v for k, v in os.environ.items() if k != "ACLQ_REDIS_URL"}
    env.update(ACLQ_MODEL_REPO=str(model_repo), ACLQ_DEVICE_COUNT="2", ACLQ_PROVIDER="cpu")
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "batch", "--model", "mlp", "--input", str(source),
         "--output", str(tmp_path / "out"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["done"] == len(arrays) == sum(summary["devices"].values())
    assert set(summary["devices"]) <= {"0", "1"}
    # --quiet: the command's own lines only, none of its workers' (e.g. Celery's warning for root)
    assert all(line.startswith("aclq batch: ") for line in done.stderr.splitlines() if line), done.stderr


def test_ais_bench_output_formats(client, model_repo, npy_dir, tmp_path):
    """--outfmt bin: one raw file per output, <item>_<i>.bin; a resumed run skips what is whole."""
    source, arrays = npy_dir
    summary = run_batch(client, "mlp", source, tmp_path / "out", outfmt="bin", window=4)
    assert summary.done == 12
    for name, x in arrays.items():
        expected = mlp_reference(model_repo, x)
        got = np.fromfile(tmp_path / "out" / name.replace(".npy", "_0.bin"), dtype=np.float32)
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5)
    (tmp_path / "out" / "nested" / "03_0.bin").unlink()
    again = run_batch(client, "mlp", source, tmp_path / "out", outfmt="bin", resume=True)
    assert (again.skipped, again.done) == (11, 1)
    x = np.random.default_rng(9).standard_normal((20, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run_batch(client, "mlp", tmp_path / "x.npy", tmp_path / "split", batch_size=8, outfmt="txt")
    y = np.loadtxt(tmp_path / "split" / "y.txt", dtype=np.float32)
    np.testing.assert_allclose(y, mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)


def test_files_of_a_directory_share_jobs_and_fail_alone(client, model_repo, npy_dir, tmp_path):
    """--batch-size 4 on a directory: files stacked into jobs, outputs split back per file; a
    file of another shape, and one that is no array, fail alone and --resume picks up just them."""
    source, arrays = npy_dir
    np.save(source / "05.npy", np.ones((2, 63), np.float32))  # among same-shape files
    (source / "07.npy").write_bytes(b"not an array")
    summary = run_batch(client, "mlp", source, tmp_path / "out", batch_size=4, window=2)
    assert (summary.total, summary.done, summary.failed) == (12, 10, 2)
    assert summary.jobs < 10  # the done files shared jobs
    assert {(f.item, f.code) for f in summary.failures} == {("05.npy", 100017), ("07.npy", 100003)}
    for name, x in arrays.items():
        if name not in ("05.npy", "07.npy"):
            with np.load(tmp_path / "out" / name.replace(".npy", ".npz")) as out:
                np.testing.assert_allclose(out["y"], mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)
    np.save(source / "05.npy", arrays["05.npy"])
    np.save(source / "07.npy", arrays["07.npy"])
    again = run_batch(client, "mlp", source, tmp_path / "out", batch_size=4, resume=True)
    assert (again.skipped, again.done, again.failed) == (10, 2, 0)


def test_files_whose_outputs_do_not_keep_the_rows_cannot_share_a_job(client, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        np.save(source / f"{i}.npy", np.eye(1, 4, i, dtype=np.float32))
    summary = run_batch(client, "nonzero", source, tmp_path / "out", batch_size=3)
    assert summary.failed == 3 and {f.code for f in summary.failures} == {100000}
    assert "its rows are not the inputs'" in summary.failures[0].message
    assert run_batch(client, "nonzero", source, tmp_path / "out1").done == 3


def test_by_reference_workers_read_and_write_the_files(client, cluster, model_repo, npy_dir, tmp_path):
    """--transfer ref: the same outputs as by bytes, every input read and every output written by
    the workers; a split array's rows read in place; auto picks ref when the workers are here."""
    source, arrays = npy_dir
    summary = run_batch(client, "mlp", source, tmp_path / "ref", transfer="ref", outfmt="npy", window=4)
    assert (summary.done, summary.transfer) == (12, "ref")
    for name, x in arrays.items():
        got = np.load(tmp_path / "ref" / name.replace(".npy", "_0.npy"))
        np.testing.assert_allclose(got, mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)
    x = np.random.default_rng(11).standard_normal((37, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    split = run_batch(client, "mlp", tmp_path / "x.npy", tmp_path / "split", batch_size=8, transfer="ref")
    assert split.done == 5
    np.testing.assert_allclose(
        np.load(tmp_path / "split" / "y.npy"), mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6
    )
    workers = fetch_status(cluster.settings).workers
    assert choose_transfer(workers, cluster.settings.host)[0] == "ref"
    assert choose_transfer(workers, "another-host")[0] == "bytes"
    assert choose_transfer([], cluster.settings.host)[0] == "bytes"


def test_auto_batch_size_is_measured_bounded_and_kept_on_resume(client, model_repo, tmp_path):
    x = np.random.default_rng(12).standard_normal((3000, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    probe = plan(tmp_path / "x.npy", tmp_path / "out", batch_size=PROBE_ROWS)
    sized = auto_batch_size(client, "mlp", probe)
    size, why = sized.size, sized.why
    assert 1 <= size <= AUTO_JOB_BYTES // (64 * 4) and "ms a row" in why and "ms a job beyond its rows" in why
    assert sized.probed == ()  # a split array's probe rows are not the run's jobs: none of them done
    # two devices: each waits about half a job on the other at the end, kept to AUTO_OVERHEAD
    assert size <= 3000 * AUTO_OVERHEAD / (0.5 * 2)
    assert (tmp_path / "out" / ".batch_size").read_text() == str(size)
    assert auto_batch_size(client, "mlp", probe, resume=True) == JobSize(
        size, f"kept from the run being resumed ({tmp_path / 'out' / '.batch_size'})"
    )  # fmt: skip
    run_batch(client, "mlp", tmp_path / "x.npy", tmp_path / "out", batch_size=size)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)
    (tmp_path / "dir").mkdir()
    for i in range(3):
        np.save(tmp_path / "dir" / f"{i}.npy", x[i * 4 : i * 4 + 4])
    files = auto_batch_size(client, "mlp", plan(tmp_path / "dir", tmp_path / "out2")).size  # a directory: files a job
    assert 1 <= files <= size // 4 + 1


def test_the_probe_sends_its_jobs_in_rounds_of_one_a_device(client, model_repo, tmp_path):
    """The probe's jobs go in whole rounds of one a device (at least the jobs asked for), each
    answered with the model's outputs and the worker's timing of its execution."""
    x = np.random.default_rng(14).standard_normal((PROBE_ROWS, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    probe = plan(tmp_path / "x.npy", tmp_path / "out", batch_size=PROBE_ROWS)
    feed = _ProbeInputs(probe)  # a split array: its first rows again
    for devices, jobs in ((2, PROBE_TIMED), (1, PROBE_TIMED), (2, 2)):
        details = _rounds(client, "mlp", feed, 1, devices, jobs, {})
        assert len(details) == -(-jobs // devices) * devices
        for answer in details:
            assert answer.timings["exec_ms"] > 0
            np.testing.assert_allclose(answer.outputs["y"], mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)


def test_the_probes_files_are_the_runs_first(client, model_repo, tmp_path):
    """A directory's probe jobs carry its own files, whose outputs they write as the run writes
    them; the run counts those done without running them again. A file shaped otherwise than the
    first readable one, or one that cannot be read (the first here), is left to the run, which
    says what is wrong with it; a run whose outputs lie elsewhere runs every file."""
    rng = np.random.default_rng(15)
    source = tmp_path / "in"
    source.mkdir()
    arrays = {f"{i:02d}.npy": rng.standard_normal((1 if i == 3 else 2, 64)).astype(np.float32) for i in range(40)}
    for name, x in arrays.items():
        np.save(source / name, x)
    (source / "00.npy").write_bytes(b"not an array")
    del arrays["00.npy"]
    sized = auto_batch_size(client, "mlp", plan(source, tmp_path / "out", batch_size=PROBE_ROWS))
    keys = [key for job in sized.probed for key in job.keys]
    assert keys[0] == "01.npy" and len(set(keys)) == len(keys) and not {"00.npy", "03.npy"} & set(keys)
    assert f"the probe's {len(keys)} files are done" in sized.why
    written = {key: (tmp_path / "out" / key.replace(".npy", ".npz")).stat().st_mtime_ns for key in keys}
    for output in (tmp_path / "out", tmp_path / "elsewhere"):
        summary = run(client, "mlp", plan(source, output, batch_size=sized.size), probed=sized.probed, quiet=True)
        assert (summary.total, summary.done, summary.failed, summary.skipped) == (40, 39, 1, 0)
        assert [(f.item, f.code) for f in summary.failures] == [("00.npy", 100003)]
        assert "cannot read input" in summary.failures[0].message and "00.npy" in summary.failures[0].message
        for name, x in arrays.items():
            with np.load(output / name.replace(".npy", ".npz")) as out:
                np.testing.assert_allclose(out["y"], mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)
    # the probe's outputs were not written again by the run
    assert written == {key: (tmp_path / "out" / key.replace(".npy", ".npz")).stat().st_mtime_ns for key in keys}


def test_a_probe_with_no_readable_file_leaves_every_one_to_the_run(client, tmp_path):
    """No file of a directory can be read: the probe sends nothing and says so, and the run
    fails each file alone with 100003, naming it."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        (source / f"{i}.npy").write_bytes(b"not an array")
    sized = auto_batch_size(client, "mlp", plan(source, tmp_path / "out", batch_size=PROBE_ROWS))
    assert (sized.size, sized.probed) == (1, ()) and "could be read" in sized.why
    summary = run(client, "mlp", plan(source, tmp_path / "out"), probed=sized.probed, quiet=True)
    assert (summary.done, summary.failed) == (0, 3)
    for i, failure in enumerate(summary.failures):
        assert (failure.item, failure.code) == (f"{i}.npy", 100003) and f"{i}.npy" in failure.message


def test_the_probe_reads_on_only_so_far_for_files_shaped_as_the_first(client, model_repo, tmp_path):
    """A directory whose first file is its odd one out is not read whole by the probe: it passes
    over PROBE_PASSES files shaped otherwise, then sends the first one's inputs again; the run
    runs every file."""
    source = tmp_path / "in"
    source.mkdir()
    rows = [1] + [2] * PROBE_PASSES + [1] * 6  # the 1-row files past the passes are not the probe's
    arrays = {f"{i:03d}.npy": np.full((n, 64), i, np.float32) for i, n in enumerate(rows)}
    for name, x in arrays.items():
        np.save(source / name, x)
    sized = auto_batch_size(client, "mlp", plan(source, tmp_path / "out", batch_size=PROBE_ROWS))
    assert [key for job in sized.probed for key in job.keys] == ["000.npy"]
    summary = run(client, "mlp", plan(source, tmp_path / "out", batch_size=sized.size), probed=sized.probed, quiet=True)
    assert (summary.done, summary.failed) == (len(rows), 0)
    for name, x in arrays.items():
        with np.load(tmp_path / "out" / name.replace(".npy", ".npz")) as out:
            np.testing.assert_allclose(out["y"], mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)


def test_cli_by_bytes_counts_the_probes_files_done_in_the_runs_format(cluster, model_repo, tmp_path):
    """`aclq batch` over a directory by bytes: its probe's files are written in the run's output
    format and counted done without being run again, and every file's output is the model's."""
    rng = np.random.default_rng(16)
    source = tmp_path / "in"
    source.mkdir()
    arrays = {f"{i:02d}": rng.standard_normal((2, 64)).astype(np.float32) for i in range(60)}
    for stem, x in arrays.items():
        np.save(source / f"{stem}.npy", x)
    with _batch_cli(cluster, source, tmp_path / "out", "--transfer", "bytes", "--outfmt", "npy") as proc:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    probed = re.search(r"the probe's (\d+) files are done", err)
    assert probed and int(probed.group(1)) > 0, err
    # the run ran (and logged) only the files the probe had not done
    assert sum(line.endswith(": done") for line in err.splitlines()) == 60 - int(probed.group(1))
    summary = json.loads(out)
    assert (summary["transfer"], summary["done"], summary["total"], summary["failed"]) == ("bytes", 60, 60, 0)
    assert not list((tmp_path / "out").glob("*.npz"))  # the probe wrote the run's format, not its default
    for stem, x in arrays.items():
        np.testing.assert_allclose(
            np.load(tmp_path / "out" / f"{stem}_0.npy"), mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6
        )


def test_cli_says_how_data_travels_and_how_jobs_are_sized(cluster, model_repo, tmp_path):
    x = np.random.default_rng(13).standard_normal((500, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with _batch_cli(cluster, tmp_path / "x.npy", tmp_path / "out") as proc:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "aclq batch: transfer ref: every live worker (2) runs on this host" in err
    assert "aclq batch: batch size " in err and "ms a job beyond its rows" in err
    summary = json.loads(out)
    assert summary["transfer"] == "ref" and summary["done"] == summary["total"] == summary["jobs"]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), mlp_reference(model_repo, x), rtol=1e-5, atol=1e-6)
