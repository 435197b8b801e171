"""Quiet by default: no TensorFlow/absl start-up lines on stderr unless asked for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fervision._quiet import filter_tensorflow_log

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "images" / "astronaut.jpg"

# What TensorFlow 2.21 prints on a CPU machine, before Python can set a log level.
NOISE = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796071342.764987   11422 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796071342.766046   11422 cudart_stub.cc:31] Could not find cuda drivers.
I0000 00:00:1796071342.875110   11422 cpu_feature_guard.cc:227] This TensorFlow binary is optimized
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
E0000 00:00:1796071347.729399   11422 cuda_platform.cc:52] failed call to cuInit: (303)
"""


def _env(**extra):
    """Return the environment of a user who set nothing (conftest sets TF_CPP_MIN_LOG_LEVEL)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "FERVISION_VERBOSE")}
    return {**env, **extra}


def test_filter_drops_tensorflow_startup_lines():
    assert filter_tensorflow_log(NOISE, 3) == ""
    assert filter_tensorflow_log(NOISE, 1) == ""  # info dropped, cuInit is only "no GPU"
    other = "UserWarning: something else\n"
    assert filter_tensorflow_log(other + NOISE, 3) == other  # not TensorFlow's: kept


def test_filter_applies_the_users_level():
    kept = filter_tensorflow_log(NOISE, 0)
    assert "oneDNN" in kept
    assert "To enable the following" in kept
    assert "cuInit" in kept
    assert "absl::InitializeLog" not in kept  # the banner only says how absl logs
    real_error = "E0000 00:00:1.5   7 foo.cc:1] something failed\n"
    assert filter_tensorflow_log(real_error, 2) == real_error
    assert filter_tensorflow_log(real_error, 3) == ""


@pytest.mark.slow
def test_predict_json_writes_nothing_to_stderr():
    exe = shutil.which("fervision")
    cmd = [exe] if exe else [sys.executable, "-m", "fervision.apps.cli"]
    done = subprocess.run([*cmd, "predict", "--json", str(PHOTO)], capture_output=True,
                          text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert '"emotion"' in done.stdout


@pytest.mark.slow
def test_verbose_shows_tensorflow_output_again():
    # -v after the command; stdout stays the plain table.
    done = subprocess.run([sys.executable, "-m", "fervision.apps.cli", "predict", "-v",
                           str(PHOTO)], capture_output=True, text=True, timeout=300,
                          env=_env())
    assert done.returncode == 0, done.stderr
    assert "absl::InitializeLog" in done.stderr or "] " in done.stderr  # TensorFlow's lines
    assert "1 face" in done.stdout


@pytest.mark.slow
def test_library_import_and_first_use_are_quiet():
    code = ("import fervision, numpy as np\n"
            "clf = fervision.EmotionClassifier.from_pretrained()\n"
            "print(clf.predict(np.zeros((1, 48, 48), np.uint8)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    loud = subprocess.run([sys.executable, "-c", "from fervision import estimator"],
                          capture_output=True, text=True, timeout=300,
                          env=_env(FERVISION_VERBOSE="1"))
    assert loud.returncode == 0
    assert loud.stderr  # asked for: TensorFlow's own lines
