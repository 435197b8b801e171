"""
Grid search over the learning rate
==================================

:class:`~fervision.estimator.EmotionClassifier` is a scikit-learn estimator, so
:class:`~sklearn.model_selection.GridSearchCV` tunes its parameters.  Here: three
learning rates, 2-fold cross-validation, a tiny network and small synthetic images so
it runs in seconds; the same code runs on a Dask cluster inside
``joblib.parallel_backend("dask")`` (see the "From one machine to a cluster" guide).
"""

# %%
# Data: small synthetic "faces" whose class is given by where a bright band lies, so
# that a one-epoch model can learn something and the learning rate matters.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from fervision import EmotionClassifier

rng = np.random.default_rng(0)
y = np.array(["angry", "happy", "sad"])[rng.integers(0, 3, 240)]
X = rng.integers(0, 100, size=(240, 24, 24), dtype=np.uint8)
for i, label in enumerate(y):
    X[i, {"angry": slice(0, 8), "happy": slice(8, 16), "sad": slice(16, 24)}[label]] += 120

# %%
# The search
# ----------
search = GridSearchCV(
    EmotionClassifier(backbone="fernet_tiny", input_size=24, epochs=2, batch_size=16,
                      precision="float32", random_state=0),
    {"learning_rate": [1e-4, 1e-3, 1e-2]},
    cv=2,
    scoring="accuracy",
)
search.fit(X, y)
print("best:", search.best_params_, f"accuracy {search.best_score_:.2f}")

# %%
# Mean test score per candidate, with the spread over folds
# ---------------------------------------------------------
res = search.cv_results_
rates = [p["learning_rate"] for p in res["params"]]
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.errorbar(rates, res["mean_test_score"], yerr=res["std_test_score"], marker="o",
            capsize=4)
ax.set_xscale("log")
ax.set_xlabel("learning_rate")
ax.set_ylabel("mean test accuracy (2-fold CV)")
ax.set_title("GridSearchCV over EmotionClassifier (synthetic data)")
ax.axhline(1 / 3, color="gray", linestyle=":", label="chance")
ax.legend()
fig.tight_layout()
plt.show()
