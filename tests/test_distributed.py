"""GridSearchCV over a dask.distributed cluster through joblib's dask backend."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")


def _images(n, seed=0):
    """Tiny synthetic faces whose class is where a bright band is (easy to learn)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
    y = np.array(["happy", "sad"])[np.arange(n) % 2]
    X[y == "happy", :8] += 150
    X[y == "sad", 8:] += 150
    return X, y


def test_grid_search_runs_on_dask_workers():
    import joblib
    from sklearn.model_selection import GridSearchCV

    from fervision import EmotionClassifier

    X, y = _images(40)
    grid = {"learning_rate": [1e-3, 1e-2]}
    search = GridSearchCV(
        EmotionClassifier(backbone="fernet_tiny", input_size=16, epochs=1, batch_size=8,
                          precision="float32", random_state=0, verbose=0,
                          run_eagerly=True),  # a few steps per fit: tracing would dominate
        grid, cv=2, refit=False,  # no local refit: the test is about the remote fits
    )
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit=0) as cluster, \
            distributed.Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2
        with distributed.get_task_stream(client) as stream, \
                joblib.parallel_backend("dask"):
            search.fit(X, y)
        ran_on = {task["worker"] for task in stream.data}

    # 2 candidates x 2 folds fitted on the cluster's worker processes.
    assert ran_on
    assert ran_on <= workers
    n_tasks = len(stream.data)
    assert n_tasks >= 4, f"only {n_tasks} tasks ran on the cluster"
    assert search.best_params_ in [{"learning_rate": lr} for lr in grid["learning_rate"]]
    best = int(np.argmax(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == search.cv_results_["params"][best]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.cv_results_["mean_fit_time"].min() > 0
