"""Training on several machines: two local worker processes, a cluster on loopback ports."""

import dataclasses
import glob
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from faceswap_tf import trainer
from tests.conftest import ROOT, tiny_config


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def scalars(model_dir):
    """{step: {tag: value}} of a run's TensorBoard losses and mask means."""
    out = {}
    for path in glob.glob(os.path.join(model_dir, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith(("loss/", "mask/")):
                    out.setdefault(event.step, {})[value.tag] = float(tf.make_ndarray(value.tensor))
    return out


def test_two_workers_train_as_one_device_and_a_killed_one_stops_the_other(face_dirs, tmp_path):
    model_dir = tmp_path / "model"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    command = [sys.executable, "-m", "faceswap_tf.train", "--flagfile=flags/smoke.flags",
               f"--faces_a={face_dirs['a']}", f"--faces_b={face_dirs['b']}", f"--model_dir={model_dir}",
               "--steps=1000", "--save_every=2", "--log_every=1", "--preview_every=1000", "--eval_every=0",
               "--run_eagerly", "--worker_timeout=3"]
    workers, logs = [], []
    for index in range(2):
        logs.append(open(tmp_path / f"worker{index}.log", "w+"))
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                   "index": index}})}
        workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=logs[-1]))
    try:
        deadline = time.monotonic() + 300
        while not (model_dir / "ckpt-2.index").exists():
            assert time.monotonic() < deadline and workers[0].poll() is None, open(logs[0].name).read()[-3000:]
            time.sleep(0.2)
        workers[1].send_signal(signal.SIGKILL)  # the other worker, mid-run
        killed = time.monotonic()
        workers[0].wait(timeout=120)
        waited = time.monotonic() - killed
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        for log in logs:
            log.close()
    stderr = open(logs[0].name).read()
    assert workers[0].returncode == 2 and "Traceback" not in stderr, stderr[-3000:]
    error, = [line for line in stderr.splitlines() if line.startswith("error:")]
    latest = tf.train.latest_checkpoint(str(model_dir))
    assert error.startswith(f"error: {model_dir}: training stopped at step "), error
    assert error.endswith(f": a worker of the cluster failed (/job:worker/replica:0/task:1 stopped answering); "
                          f"start every worker again to resume from {latest}"), error
    assert waited < 15, waited  # the heartbeat timeout (3 s), not forever nor a slow teardown

    # Each step of the two workers (half the global batch each) is the step one device takes.
    trained = scalars(str(model_dir))
    assert "CollectiveAllReduceStrategy over 2 replicas" in stderr
    one = tmp_path / "one"
    config = tiny_config(face_dirs, one, steps=2, log_every=1, run_eagerly=True)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, balance=1.0))  # as smoke.flags
    trainer.run(config, log=io.StringIO())
    reference = scalars(str(one))
    for step in (1, 2):
        assert trained[step].keys() == reference[step].keys() and len(reference[step]) == 6
        for tag, value in reference[step].items():
            assert trained[step][tag] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, tag)

    # Restarted (here as one process), the run resumes from the last checkpoint.
    step = int(latest.rsplit("-", 1)[1])
    log = io.StringIO()
    trainer.run(dataclasses.replace(config, model_dir=str(model_dir), steps=step + 1), log=log)
    assert f"training from step {step} to {step + 1}" in log.getvalue()
    assert not (model_dir / ".worker1").exists()
