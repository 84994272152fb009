"""Jobs by reference: the worker reads the inputs where they lie (a local path, or an object
store URL through fsspec: a real S3-compatible server, moto's, started here) and writes the
outputs there itself; the answer says where."""

import io
import subprocess
import sys
import time
import urllib.request
import uuid

import fsspec
import numpy as np
import onnxruntime as ort
import pytest

from producer import Client, InputRef, JobFailed, OutputRef, Settings
from worker.embedded import free_port
from worker.local import LocalCluster

#: what boto and fsspec read to reach the S3 server of this module
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on a free loopback port, and the environment that points fsspec at it
    (set before the workers start: they read it too)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto's S3 server did not start"
            time.sleep(0.1)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**S3_ENV, "FSSPEC_S3_ENDPOINT_URL": url}.items():
            mp.setenv(name, value)
        # fsspec reads FSSPEC_* once, at its import: where an earlier test imported it, this
        # process is pointed at the server through its configuration too
        mp.setitem(fsspec.config.conf, "s3", {**fsspec.config.conf.get("s3", {}), "endpoint_url": url})
        yield url
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="module")
def client(s3_endpoint, redis_server, model_repo):
    settings = Settings(redis_url=redis_server.url, namespace=f"ref{uuid.uuid4().hex[:6]}", model_repo=str(model_repo))
    with LocalCluster(settings, devices=[0]), Client(settings) as client:
        yield client


@pytest.fixture(scope="module")
def mlp(model_repo):
    session = ort.InferenceSession(str(model_repo / "mlp" / "1" / "model.onnx"))
    return lambda x: session.run(None, {"x": x})[0]


X = np.random.default_rng(3).standard_normal((100, 64)).astype(np.float32)


def test_a_local_job_by_reference_reads_its_rows_and_writes_its_outputs(client, mlp, tmp_path):
    np.save(tmp_path / "x.npy", X)
    details = client.submit(
        "mlp", {"x": InputRef(str(tmp_path / "x.npy"), rows=(10, 14))}, output_to=str(tmp_path / "out" / "a")
    ).details(60)
    assert details.outputs == {} and details.written == (str(tmp_path / "out" / "a.npz"),)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "a.npz")["y"], mlp(X[10:14]), rtol=1e-5, atol=1e-6)
    as_bin = client.submit(
        "mlp", {"x": InputRef(str(tmp_path / "x.npy"))}, output_to=OutputRef(str(tmp_path / "b"), "bin")
    ).details(60)
    assert as_bin.written == (str(tmp_path / "b_0.bin"),)
    got = np.fromfile(tmp_path / "b_0.bin", dtype=np.float32).reshape(100, -1)
    np.testing.assert_allclose(got, mlp(X), rtol=1e-5, atol=1e-6)
    # inputs by reference, outputs back in the answer, as with any job
    np.testing.assert_allclose(client.infer("mlp", {"x": InputRef(str(tmp_path / "x.npy"), rows=(0, 2))})["y"],
                               mlp(X[:2]), rtol=1e-5, atol=1e-6)  # fmt: skip


def test_an_s3_job_by_reference(client, mlp, s3_endpoint):
    fs = fsspec.filesystem("s3")
    bucket = f"b{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    buffer = io.BytesIO()
    np.save(buffer, X)
    fs.pipe(f"{bucket}/in/x.npy", buffer.getvalue())
    details = client.submit(
        "mlp", {"x": InputRef(f"s3://{bucket}/in/x.npy", rows=(50, 58))}, output_to=f"s3://{bucket}/out/x"
    ).details(60)
    assert details.written == (f"s3://{bucket}/out/x.npz",)
    with fs.open(f"{bucket}/out/x.npz", "rb") as f:
        np.testing.assert_allclose(np.load(io.BytesIO(f.read()))["y"], mlp(X[50:58]), rtol=1e-5, atol=1e-6)
    with pytest.raises(JobFailed, match=r"100003.*cannot read input 's3://.*/in/missing.npy'"):
        client.infer("mlp", {"x": InputRef(f"s3://{bucket}/in/missing.npy")})


def test_bad_references_fail_alone_each_with_its_code(client, mlp, tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "two.npz", a=X, b=X)
    (tmp_path / "not_a_dir").write_text("")
    good = InputRef(str(tmp_path / "x.npy"), rows=(0, 1))
    cases = [
        ({"x": InputRef(str(tmp_path / "missing.npy"))}, {}, "100003", "missing.npy"),
        ({"x": InputRef("nope://bucket/x.npy")}, {}, "100003", "fsspec knows no scheme 'nope'"),
        ({"x": InputRef("gs://bucket/x.npy")}, {}, "100003", "no fsspec driver for gs:// here"),
        ({"x": InputRef(str(tmp_path / "x.npy"), rows=(90, 120))}, {}, "100000", "has 100 rows, not rows 90..120"),
        ({"x": InputRef(str(tmp_path / "two.npz"))}, {}, "100003", "name the array (key)"),
        ({"x": good}, {"output_to": str(tmp_path / "not_a_dir" / "out")}, "100003", "cannot write outputs to"),
    ]
    jobs = [(client.submit("mlp", inputs, **options), code, says) for inputs, options, code, says in cases]
    fine = client.submit_many("mlp", [{"x": good}] * 3)  # one message: the bad ones must not fail these
    for job, code, says in jobs:
        with pytest.raises(JobFailed) as failed:
            job.result(60)
        assert code in str(failed.value) and says in str(failed.value)
    for job in fine:
        np.testing.assert_allclose(job.result(60)["y"], mlp(X[:1]), rtol=1e-5, atol=1e-6)
    keyed = client.infer("mlp", {"x": InputRef(str(tmp_path / "two.npz"), rows=(0, 1), key="b")})
    np.testing.assert_allclose(keyed["y"], mlp(X[:1]), rtol=1e-5, atol=1e-6)
