"""No pickle anywhere: a pickled message is refused and logged, and the worker keeps serving."""

from dataclasses import replace

import numpy as np
from celery import Celery

from producer import Client, keys
from producer.dispatch import queue
from producer.wire import INFER_TASK
from worker.local import LocalCluster


def test_a_pickled_message_is_refused_and_logged(cluster, capfd):
    settings = replace(cluster.settings, namespace=cluster.settings.namespace + "-pickle")
    with LocalCluster(settings, devices=[0]), Client(settings) as client:  # started here: capfd sees its log
        sender = Celery("attacker", set_as_current=False)
        sender.conf.update(broker_url=settings.redis_url, task_serializer="pickle", accept_content=["pickle"])
        with sender:
            sender.send_task(INFER_TASK, args=[["pickled-job"]], queue=queue(keys.shared_queue(settings.namespace)))
        a = np.ones((2, 3), np.float32)
        assert client.infer("add", {"a": a, "b": a}, result_timeout_s=30)["c"].sum() == 12  # taken after it
        assert client.job("pickled-job").status().value == "not_found"  # it never ran
    _, err = capfd.readouterr()
    assert "Refusing to deserialize untrusted content of type pickle" in err
