"""Batch analysis on a Dask cluster, and ``ParallelPostFit`` on face crops.

Two worker processes, one thread each; ``dask_ml.wrappers.ParallelPostFit`` predicting
on a Dask array of face crops.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_collections import BAD_FILES, make_image_tree

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_image_tree(root, 24)
    return root


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit=0) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def one_process(tree, tmp_path_factory):
    import fervision

    out = tmp_path_factory.mktemp("ref") / "all.jsonl"
    records = list(fervision.analyze_files(tree, out))
    return records, out.read_bytes()


def _pipelines():
    from fervision.faces import _batch

    return [(id(v.classifier), id(v.detector)) for k, v in _batch._CACHE.items()
            if k[0] == "pipeline"]


def test_workers_write_the_same_file_as_one_process(tree, client, one_process, tmp_path):
    import fervision

    records, data = one_process
    out = tmp_path / "dask.jsonl"
    with distributed.get_task_stream(client) as stream:
        got = list(fervision.analyze_files(tree, out, client=client, partition_size=4))
    assert got == records
    assert out.read_bytes() == data  # the same file, byte for byte, in input order
    assert {r["path"] for r in got if "error" in r} == {str(tree / b) for b in BAD_FILES}
    # 7 partitions spread over both workers; each worker built one pipeline (one
    # detector, one classifier) and reused it for all its partitions.
    ran_on = {t["worker"] for t in stream.data if "analyze_partition" in t["key"]}
    assert len(ran_on) == 2
    per_worker = client.run(_pipelines)
    assert all(len(p) == 1 for p in per_worker.values()), per_worker


def test_resume_on_workers(tree, client, one_process, tmp_path):
    import fervision

    records, data = one_process
    out = tmp_path / "dask.jsonl"
    lines = data.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:9]) + lines[9][:40])  # a killed run's file
    new = list(fervision.analyze_files(tree, out, client=client, partition_size=5,
                                       resume=True))
    assert [r["path"] for r in new] == [r["path"] for r in records[9:]]
    assert out.read_bytes() == data


def test_scheduler_address_and_csv(tree, client, one_process, tmp_path):
    """A scheduler address (what --scheduler passes) and a CSV output."""
    import fervision
    from fervision.faces._collections import read_records

    records, _ = one_process
    out = tmp_path / "dask.csv"
    got = list(fervision.analyze_files(tree, out, client=client.scheduler.address,
                                       partition_size=8))
    assert got == records
    assert read_records(out)[0] == records


def test_parallel_post_fit_on_dask_array_of_crops(client, fer_sample):
    da = pytest.importorskip("dask.array")
    from dask_ml.wrappers import ParallelPostFit

    from fervision import EmotionClassifier

    X, _ = fer_sample
    crops = np.asarray(X[:40], np.uint8)  # FER2013 images are 48x48 face crops
    clf = EmotionClassifier.from_pretrained()
    expected_proba = clf.predict_proba(crops)
    wrapped = ParallelPostFit(clf)
    # ParallelPostFit maps blocks of a 2-D (samples x features) array, the scikit-learn
    # layout: each face crop is one row of 48 * 48 pixels, which the classifier reshapes.
    dX = da.from_array(crops.reshape(len(crops), -1), chunks=(10, 48 * 48))
    with distributed.get_task_stream(client) as stream:
        proba = wrapped.predict_proba(dX)
        labels = wrapped.predict(dX)
        assert isinstance(proba, da.Array)
        assert isinstance(labels, da.Array)
        proba, labels = proba.compute(), labels.compute()
    assert {t["worker"] for t in stream.data}  # computed on the cluster
    assert proba.shape == (40, len(clf.classes_))
    np.testing.assert_allclose(proba, expected_proba, atol=1e-5)
    np.testing.assert_array_equal(labels, clf.classes_[np.argmax(proba, axis=1)])
