"""Networks: backbones, augmentation, ensembles, export, callbacks and distillation.

The backbone registry and blocks, augmentation, ensembles, BatchNorm recalibration,
precision, export, test-time augmentation, training callbacks and distillation.
Importing this package imports nothing heavy; its modules import Keras.
"""
