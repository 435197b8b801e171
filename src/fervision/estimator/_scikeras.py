"""Every use of SciKeras internals, in one place.

:class:`~fervision.estimator.EmotionClassifier` subclasses
:class:`scikeras.wrappers.KerasClassifier` and needs a few things SciKeras does not
document: four helpers of ``scikeras._utils``, the private attributes
``_fit_callbacks``, ``_predict_callbacks``, ``_predict_kwargs`` and ``_random_state``,
``_initialize_callbacks``, and the hook methods listed in :data:`OVERRIDDEN`
(``_keras_build_fn``, the documented model-building seam, is not one of them).  The
rest of the package goes through the small functions below, so a SciKeras upgrade
means re-checking this module only.  fervision pins ``scikeras==0.13.0``; importing
this module warns when another version is installed or a hook has disappeared.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

from scikeras._utils import (
    get_optimizer_class,
    route_params,
    try_to_convert_strings_to_classes,
    unflatten_params,
)
from scikeras.wrappers import KerasClassifier

__all__ = ["OVERRIDDEN", "SUPPORTED_VERSION", "KerasClassifier", "check_scikeras"]

#: The SciKeras version fervision is written and tested against.
SUPPORTED_VERSION = "0.13.0"

#: Undocumented ``KerasClassifier`` methods ``EmotionClassifier`` overrides, and why.
OVERRIDDEN = {
    "_validate_data": "images are not 2-D tabular data (ragged lists, channels, ranges)",
    "_fit": "check parameters first; leave process-wide seeds and policies as found",
    "_fit_keras_model": "training callbacks, stratified validation, two-phase transfer",
    "_ensure_compiled_model": "compile loaded models with this estimator's loss/optimizer",
    "_predict_raw": "fast small-batch inference without Model.predict, and TTA",
}


def check_scikeras() -> list[str]:
    """Warn (``RuntimeWarning``) if SciKeras is not the supported version or lacks a hook.

    Returns the problems found (empty when all is as expected).
    """
    problems = []
    try:
        found = version("scikeras")
    except PackageNotFoundError:  # e.g. a source checkout on sys.path
        found = None
    if found is not None and found != SUPPORTED_VERSION:
        problems.append(f"scikeras {found} is installed but fervision supports "
                        f"scikeras=={SUPPORTED_VERSION} only")
    missing = [name for name in (*OVERRIDDEN, "_initialize_callbacks")
               if not hasattr(KerasClassifier, name)]
    if missing:
        problems.append(f"KerasClassifier lacks {', '.join(missing)}, which "
                        "EmotionClassifier overrides or calls")
    if problems:
        warnings.warn(
            "; ".join(problems) + ". EmotionClassifier relies on SciKeras internals "
            f"(see fervision.estimator._scikeras); install scikeras=={SUPPORTED_VERSION}.",
            RuntimeWarning, stacklevel=2)
    return problems


check_scikeras()


# ------------------------------------------------------------- parent behaviour
def parent_fit(est, X, y, **kwargs):
    """SciKeras's ``_fit`` (encoders, model building, then ``_fit_keras_model``)."""
    return KerasClassifier._fit(est, X, y, **kwargs)


def parent_initialize(est, X, y):
    """SciKeras's ``initialize``."""
    return KerasClassifier.initialize(est, X, y)


def parent_fit_keras_model(est, X, y, **kwargs):
    """SciKeras's ``_fit_keras_model``: one ``Model.fit``; records ``history_``."""
    return KerasClassifier._fit_keras_model(est, X, y, **kwargs)


# ------------------------------------------------------------- private state
def random_state(est):
    """Return the seed SciKeras resolved for the current fit (``_random_state``)."""
    return est._random_state


def set_random_state(est, value) -> None:
    est._random_state = value


def fit_callbacks(est) -> list:
    """Return the callbacks SciKeras passes to ``Model.fit`` (``_fit_callbacks``)."""
    return list(est._fit_callbacks)


def set_fit_callbacks(est, callbacks) -> None:
    est._fit_callbacks = list(callbacks)


def initialize_callbacks(est) -> None:
    """Build ``_fit_callbacks``/``_predict_callbacks`` from ``callbacks`` parameters."""
    est._initialize_callbacks()


# ------------------------------------------------------------- parameter routing
def predict_needs_keras_loop(est) -> bool:
    """Tell whether prediction must run through ``Model.predict``.

    It must for predict callbacks, or a routed ``predict__`` parameter other than
    ``batch_size`` (``verbose``, ``steps``...), which only Keras's loop honours.
    """
    # Only explicit predict__ keys: SciKeras also routes the plain ``batch_size`` and
    # ``verbose`` (fit's progress) to predict, and neither needs Keras's loop.
    return bool(est._predict_callbacks) or any(
        k.startswith("predict__") and k != "predict__batch_size" for k in est.get_params())


def predict_arguments(est, n_samples: int, **kwargs) -> dict:
    """Return the keyword arguments for ``Model.predict``.

    Routed ``predict__`` parameters, SciKeras's predict callbacks, then ``kwargs``;
    ``batch_size=-1`` means one batch.
    """
    args = route_params(est.get_params(), destination="predict",
                        pass_filter=est._predict_kwargs, strict=True)
    args = {k: v for k, v in args.items() if not k.startswith("callbacks")}
    args["callbacks"] = est._predict_callbacks
    args.update(kwargs)
    if args.get("batch_size") == -1:
        args["batch_size"] = max(n_samples, 1)
    return args


def make_optimizer(est, optimizer, learning_rate: float):
    """Make an optimizer from a name or class and the routed ``optimizer__`` parameters."""
    cls = try_to_convert_strings_to_classes(optimizer, get_optimizer_class)
    routed = route_params(est.get_params(), destination="optimizer",
                          pass_filter=set(), strict=True)
    routed.setdefault("learning_rate", float(learning_rate))
    return unflatten_params(items=cls, params=routed)
