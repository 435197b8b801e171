"""benchmarks/bench_backbones.py: the unregistered fernet variants it measures."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_backbones
        yield bench_backbones
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_fernet_variant_builds_the_stages_it_names(bench):
    from fervision.nn.backbones import create_model

    same = create_model(bench.fernet_variant("32-64-128-256/1-1-2-1"), n_classes=7)
    deep = create_model("fernet_small_deep", n_classes=7)
    assert same.count_params() == deep.count_params()
    wider = create_model(bench.fernet_variant("32-64-192-384/1-1-1-1"), n_classes=7)
    assert wider.count_params() > create_model("fernet_small", n_classes=7).count_params()


def test_a_lambda_builder_gives_a_model_that_predicts():
    import numpy as np

    from fervision import EmotionClassifier
    from fervision.nn.backbones import create_model, fernet_body

    model = create_model(lambda x, *, weights=None: fernet_body(
        x, widths=(8,), blocks=(1,), stem=8), input_size=24, n_classes=3)
    assert model.name == "fervision__lambda_"
    clf = EmotionClassifier.from_keras_model(model, ["a", "b", "c"], input_size=24)
    X = np.random.default_rng(0).random((20, 24, 24, 1), dtype=np.float32)
    assert clf.predict_proba(X).shape == (20, 3)


@pytest.mark.parametrize("spec", ["32-64/1", "32-x/1-1", "32-64"])
def test_bad_fernet_variant_is_named(bench, spec):
    with pytest.raises(SystemExit, match=spec):
        bench.fernet_variant(spec)


def test_results_record_the_processor_they_were_measured_on(bench):
    import os
    from pathlib import Path

    import bench_vs_fer

    from fervision.nn.precision import cpu_supports_bf16

    info = bench_vs_fer.machine()
    assert info["cpus"] == os.cpu_count()
    assert info["cpu_bf16"] is cpu_supports_bf16()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        if names:
            assert info["cpu"] == names[0]
    assert info["cpu"]
    assert set(info["vector_flags"]) <= bench_vs_fer._VECTOR_FLAGS
    if cpu_supports_bf16():
        assert {"amx_bf16", "avx512_bf16"} & set(info["vector_flags"])
