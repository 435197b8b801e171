"""The package layout: old module paths still work (and warn), sizes and no cycle."""

from __future__ import annotations

import importlib
import pickle
import sys
import warnings

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import check_layout

from fervision._deprecated import MOVED


def test_no_large_file_or_class_and_no_import_cycle():
    assert check_layout.problems() == []


def test_cycle_detector_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert check_layout.cycles(graph) == [["a", "b", "c"]]


def _import_fresh(name):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_path_warns_and_reexports(old):
    new = importlib.import_module(MOVED[old])
    with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
        module = _import_fresh(f"fervision.{old}")
    for name in module.__all__:
        assert getattr(module, name) is getattr(new, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        namespace = {}
        exec(f"from fervision.{old} import *", namespace)
    assert set(module.__all__) <= set(namespace)


def test_old_classifier_path_and_label_encoder_alias():
    from fervision.estimator import EmotionClassifier, OneHotTargetEncoder

    with pytest.warns(DeprecationWarning, match=r"fervision\.classifier is deprecated"):
        old = _import_fresh("fervision.classifier")
    assert old.EmotionClassifier is EmotionClassifier
    with pytest.warns(DeprecationWarning, match="OneHotTargetEncoder"):
        assert old.LabelEncoder is OneHotTargetEncoder


def test_pickle_naming_the_old_module_still_loads():
    from fervision.estimator import EmotionClassifier

    clf = EmotionClassifier(backbone="fernet_tiny", epochs=3)
    data = pickle.dumps(clf)
    new_path = b"fervision.estimator._classifier"
    assert new_path in data
    # A pickle made before the move names fervision.classifier; protocol 0 spells the
    # class as a text GLOBAL opcode, easy to rewrite to the old name.
    old = pickle.dumps(clf, protocol=0).replace(
        b"cfervision.estimator._classifier\nEmotionClassifier",
        b"cfervision.classifier\nEmotionClassifier")
    assert b"cfervision.classifier\n" in old
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = pickle.loads(old)
    assert type(loaded) is EmotionClassifier
    assert loaded.epochs == 3


def test_cli_old_module_runs(tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, "-W", "ignore", "-m", "fervision.cli", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "usage" in out.stdout.lower()


def test_scikeras_version_check_warns(monkeypatch):
    from fervision.estimator import _scikeras

    monkeypatch.setattr(_scikeras, "version", lambda name: "0.14.0")
    with pytest.warns(RuntimeWarning, match=r"scikeras 0\.14\.0 .*scikeras==0\.13\.0"):
        assert _scikeras.check_scikeras()
    monkeypatch.setattr(_scikeras, "version", lambda name: _scikeras.SUPPORTED_VERSION)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _scikeras.check_scikeras() == []
