"""scikit-learn's own estimator checks on EmotionClassifier.

The checks feed 2-D tabular data (blobs, iris-like tables); EmotionClassifier treats each
row as a flattened grayscale image (zero-padded to a square, resized to ``input_size``),
so the whole image pipeline -- validation, encoders, model building, Keras training,
fast inference -- is exercised.  A two-layer backbone keeps the ~100 fits of the suite
within budget; ``check_classifiers_train`` still has to reach accuracy > 0.83 (the
classifier does not claim ``poor_score``).
"""

from __future__ import annotations

import warnings

import keras
from sklearn.utils.estimator_checks import check_estimator

from fervision import EmotionClassifier

#: Checks that fail, each with the reason.  Keep this list short (at most 4).
EXPECTED_FAILED_CHECKS = {
    "check_estimator_tags_renamed": (
        "SciKeras 0.13's BaseWrapper (a parent class) still defines the removed "
        "_more_tags; EmotionClassifier implements __sklearn_tags__ itself"
    ),
    "check_mixin_order": (
        "SciKeras's KerasClassifier lists BaseWrapper(BaseEstimator) before "
        "ClassifierMixin; a subclass cannot reorder them (C3 MRO conflict)"
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch Adam: weighting a sample by 2 is not the same as repeating it "
        "(different batches and step counts)"
    ),
    "check_methods_sample_order_invariance": (
        "float32 GEMM rounding depends on a row's position in the batch (Eigen kernels, "
        "seen: 6e-8 absolute) and the check demands rtol=1e-7"
    ),
}
#: Listed checks whose failure depends on the kernels in use (they may pass).
KERNEL_DEPENDENT = {"check_methods_sample_order_invariance"}


def mlp(x, *, weights=None):
    """Flatten + Dense(16): the checks' tabular data needs no convolutions."""
    return keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))


def test_sklearn_check_estimator():
    assert len(EXPECTED_FAILED_CHECKS) <= 4
    est = EmotionClassifier(
        backbone=mlp,
        input_size=4,
        epochs=5,
        batch_size=64,
        learning_rate=0.05,
        augment=False,
        precision="float32",
        run_eagerly=True,  # ~100 short fits: tracing a train step costs more than it saves
        # 5 epochs: plateau callbacks on the training loss (no validation set in the
        # checks) would only restore/perturb weights within those few epochs.
        early_stopping=False,
        reduce_lr=False,
        random_state=0,
        verbose=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS,
                                  on_fail=None)
    failed = sorted({r["check_name"] for r in results if r["status"] == "failed"})
    assert failed == [], f"unexpected failures: {failed}"
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    # A listed check that now passes should be removed from the list.
    must_fail = set(EXPECTED_FAILED_CHECKS) - KERNEL_DEPENDENT
    assert must_fail <= xfailed, sorted(must_fail - xfailed)
    passed = [r for r in results if r["status"] == "passed"]
    assert len(passed) >= 50

