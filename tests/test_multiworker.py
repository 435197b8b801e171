"""Training beyond one machine with MultiWorkerMirroredStrategy.

Two real worker processes on 127.0.0.1, configured through ``TF_CONFIG`` as on real
machines.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# Run by each worker process: the same script on every worker, as in
# docs/guide/distributed.rst.  Data are generated from a fixed seed, so both workers
# hold the same X, y (what "the same data on every worker" means in the docs).
WORKER = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    # First, before any TensorFlow op runs: collective ops (the all-reduce between
    # workers) can only be configured at program start-up, so the string
    # distribution_strategy="multiworker" resolved later inside fit is too late.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import numpy as np
    from fervision import EmotionClassifier

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    X = rng.integers(0, 90, size=(64, 16, 16), dtype=np.uint8)
    y = np.array(["happy", "sad"])[np.arange(64) % 2]
    X[y == "happy", :8] += 150
    X[y == "sad", 8:] += 150
    clf = EmotionClassifier(backbone="fernet_tiny", input_size=16, epochs=3, batch_size=16,
                            learning_rate=1e-2, precision="float32", random_state=0,
                            distribution_strategy=strategy, verbose=0)
    clf.fit(X, y)
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    clf.save(os.path.join(out, f"model-{task}.keras"))
    with open(os.path.join(out, f"worker-{task}.json"), "w") as f:
        json.dump({"replicas": strategy.num_replicas_in_sync,
                   "multiworker": isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy),
                   "loss": [float(v) for v in clf.history_["loss"]],
                   "proba": clf.predict_proba(X[:4]).tolist()}, f)
""")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_two_workers_train_one_model(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(WORKER)
    hosts = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
                   TF_CONFIG=json.dumps({"cluster": {"worker": hosts},
                                         "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        logs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:  # a worker left waiting for its peer must not outlive the test
            if p.poll() is None:
                p.kill()
                p.wait()
    for index, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"worker {index} failed:\n{log[-3000:]}"

    reports = [json.loads((tmp_path / f"worker-{i}.json").read_text()) for i in range(2)]
    for r in reports:
        # Two workers with one CPU replica each: gradients were all-reduced over both.
        assert r["multiworker"]
        assert r["replicas"] == 2
        assert len(r["loss"]) == 3
        assert all(np.isfinite(r["loss"]))
    # Synchronous data parallelism: both workers saw the same global loss each epoch
    # and ended with the same weights.
    np.testing.assert_allclose(reports[0]["loss"], reports[1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(reports[0]["proba"], reports[1]["proba"], atol=1e-6)

    # The chief's saved model loads in a plain process (no strategy) and predicts.
    from fervision import EmotionClassifier

    clf = EmotionClassifier.load(tmp_path / "model-0.keras")
    X = np.zeros((2, 16, 16), np.uint8)
    X[0, :8] = X[1, 8:] = 230
    proba = clf.predict_proba(X)
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert list(clf.classes_) == ["happy", "sad"]
    np.testing.assert_allclose(clf.predict_proba(X), proba)  # same model, same answer
