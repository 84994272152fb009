"""Settings, key names, and the producer's independence from acl_core."""

import ast
import dataclasses
import os
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

import producer
from acl_core.config import RuntimeConfig
from producer import ConfigError, Settings, keys
from producer.dispatch import SENTINEL_TRANSPORT, celery_config
from producer.settings import OTHER_VARIABLES, UnknownSettingWarning, known_variables

ROOT = Path(__file__).resolve().parents[3]


def test_from_env():
    env = {"ACLQ_REDIS_URL": "redis://:pw@h:1/0", "ACLQ_NAMESPACE": "ns", "ACLQ_RESULT_TTL_S": "5", "ACLQ_DEVICE": "1"}
    s = Settings.from_env(env)
    assert (s.redis_url, s.namespace, s.result_ttl_s, s.device) == ("redis://:pw@h:1/0", "ns", 5, 1)
    assert Settings.from_env(env, namespace="other").namespace == "other"
    assert Settings.from_env(s.to_env()) == s
    assert Settings.from_env({"ACLQ_WARMUP_MODELS": " mlp, resnet50:2 ,"}).warmup_refs() == [
        ("mlp", None),
        ("resnet50", 2),
    ]


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"ACLQ_RESULT_TTL_S": "soon"}, "ACLQ_RESULT_TTL_S='soon' must be a non-negative integer"),
        ({"ACLQ_REDIS_URL": "http://x"}, "must be redis://, rediss://, unix:// or sentinel://"),
        ({"ACLQ_REDIS_URL": "sentinel://h:1;redis://h:2/0?master_name=m"}, "mixes sentinel:// with redis"),
        ({"ACLQ_REDIS_URL": "redis://h:2;sentinel://h:1/0?master_name=m"}, "mixes sentinel:// with redis"),
        ({"ACLQ_REDIS_URL": "sentinel://h:1;sentinel://h:2/0"}, "names no master: add ?master_name=NAME"),
        ({"ACLQ_REDIS_URL": "sentinel://h:1/0?master_name=a;sentinel://h:2/0?master_name=b"}, "several masters (a, b)"),
        ({"ACLQ_REDIS_URL": "sentinel://h:1/1;sentinel://h:2/2?master_name=m"}, "gives database 1, 2"),
        ({"ACLQ_REDIS_URL": "sentinel://:26379/0?master_name=m"}, "a sentinel without a host"),
        ({"ACLQ_NAMESPACE": "a b"}, "ACLQ_NAMESPACE"),
        (
            {"ACLQ_WARMUP_MODELS": "mlp,resnet:v2"},
            "ACLQ_WARMUP_MODELS: 'resnet:v2': the version after ':' must be a number",
        ),
        ({"ACLQ_WARMUP_MODELS": ":3"}, "ACLQ_WARMUP_MODELS: ':3': a model name is needed before ':'"),
    ],
)
def test_bad_settings_are_named(env, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Settings.from_env(env)


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_primarys_database():
    settings = Settings(redis_url="sentinel://:pw@s1:26380;sentinel://s2/3?master_name=main")
    target = settings.sentinel()
    assert target is not None
    assert target.sentinels == (("s1", 26380), ("s2", 26379)) and target.master_name == "main"
    assert (target.db, target.username, target.password) == (3, None, "pw")
    assert target.broker_url() == "sentinel://:pw@s1:26380/3;sentinel://:pw@s2:26379/3"
    assert settings.safe_url() == "sentinel://:***@s1:26380;sentinel://s2/3?master_name=main"
    assert Settings(redis_url="redis://h/0").sentinel() is None
    config = celery_config(settings)  # kombu's connection: aclq's transport, sentinel-aware
    assert (config["broker_url"], config["broker_transport"]) == (target.broker_url(), SENTINEL_TRANSPORT)
    assert config["broker_transport_options"]["master_name"] == "main"


def test_safe_url_masks_passwords():
    assert Settings(redis_url="rediss://user:s3cret@host:6380/1").safe_url() == "rediss://user:***@host:6380/1"
    assert Settings(redis_url="redis://:s3cret@host/0").safe_url() == "redis://:***@host/0"
    assert "s3cret" not in str(ConfigError(Settings(redis_url="redis://:s3cret@h/0").safe_url()))
    with pytest.raises(ConfigError, match="no broker configured"):
        Settings().require_url()


def test_keys_live_in_one_namespace():
    assert keys.job_input("ns", "1") == "ns:job:1:in"
    assert keys.device_queue("ns", 2) == "ns.device.2"
    names = {
        keys.job_input("n", "j"),
        keys.job_reply("n", "j"),
        keys.job_state("n", "j"),
        keys.job_staging("n", "j", "r"),
    }
    assert len(names) == 4


def test_no_other_module_writes_a_key_literal():
    """Every key aclq owns is built in producer/keys.py."""
    pattern = re.compile(r"""["'][^"'\s]*:(job|workers):""")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("producer", "worker", "acl_core")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "keys.py" and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_producer_imports_neither_acl_core_nor_onnxruntime():
    code = (
        "import sys, producer, producer.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('acl_core', 'onnxruntime', 'worker')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_enqueueing_imports_neither_celery_nor_kombu():
    """The client and the `aclq` commands write Celery's messages themselves: importing the two
    (~50-60 ms of a command's start on this project's machines) is the consuming side's."""
    code = (
        "import sys, producer, producer.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'celery', 'kombu'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_exported_names():
    """__all__ lists every public name the package defines (its submodules aside)."""
    public = {n for n, v in vars(producer).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert set(producer.__all__) == public


def test_no_line_of_the_producer_imports_the_device_side():
    """Not lazily either: an enqueue-only install must never need worker, acl_core or onnxruntime."""
    for path in sorted((Path(ROOT) / "producer").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in ("worker", "acl_core", "onnxruntime")], path.name


@pytest.mark.parametrize(
    "argv",
    [["up"], ["devices"], ["worker", "--device", "0"], ["batch", "--model", "m", "--input", ".", "--output", "out"]],
)
def test_a_device_command_without_the_engine_names_the_extra(argv, tmp_path):
    """As in `pip install aclq` with no extra: no traceback, the pip line to run."""
    code = "import sys; sys.modules['onnxruntime'] = None; from producer.cli import main; main()"
    env = {k: v for k, v in os.environ.items() if k != "ACLQ_REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "pip install 'aclq[worker]'" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_variable_is_named_with_the_closest_known_ones():
    with pytest.warns(UnknownSettingWarning) as caught:
        Settings.from_env({"ACLQ_DEVICES": "2", "ACLQ_NAMESPACE": "ns", "ACLQ_ZZZ": "1"})
    assert [str(w.message) for w in caught] == [
        "ACLQ_DEVICES is not an aclq setting and is ignored; did you mean ACLQ_DEVICE or ACLQ_DEVICE_COUNT?",
        "ACLQ_ZZZ is not an aclq setting and is ignored",
    ]


def test_every_variable_aclq_reads_is_known_and_silent():
    env = dict.fromkeys(known_variables(), "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.from_env(env)
    # the variables read outside Settings: acl_core's runtime config, field by field, and the fail point
    runtime = {f"ACLQ_{f.name.upper()}" for f in dataclasses.fields(RuntimeConfig)}
    assert OTHER_VARIABLES == runtime | {"ACLQ_FAILPOINT"}
