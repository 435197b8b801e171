"""Turn a packaged model back into training-run directories.

    python examples/unpack_default_model.py --out runs

``package_default_model.py`` ships an average of finished runs (one ``.keras`` file) and
records, in the model card's ``summary.json`` and ``history*.csv``, every run of each
member's warm-restart chain.  This script goes the other way: for each member it writes
``OUT/<run name>/`` with ``final.keras`` (the member network as shipped: BatchNorm
recalibrated, float32), ``args.json``, ``classes.json``, ``history.csv`` and
``done.json``, and for the earlier runs of its chain the same files without
``final.keras``.  With them, ``train_default_model.py --init-from OUT/<run>/final.keras``
warm-starts from a shipped member, and ``compare_ensembles.py`` / ``package_default_model.py``
take the shipped members next to new runs, with their provenance intact.

A restored run's ``args.json`` says so (``restored_from``); its ``final.keras`` is the
shipped network, not the file its training wrote (which still had the training's moving
BatchNorm statistics), so the other scripts use it as it is: no second BatchNorm
recalibration, no "before recalibration" figure.  Existing files are never overwritten.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import pandas as pd

from fervision.backbones import create_model
from fervision.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2).encode()))


def member_networks(model: keras.Model) -> list[keras.Model]:
    """The networks a packaged model averages (``member_0``...), or the model itself."""
    members = [layer for layer in model.layers
               if isinstance(layer, keras.Model) and layer.name.startswith("member_")]
    return sorted(members, key=lambda m: int(m.name.split("_")[1])) or [model]


def unpack(model_path: Path, card: Path, out: Path, classes: list[str]) -> list[Path]:
    """Write one run directory per run recorded in ``card``; returns the members' runs."""
    summary = json.loads((card / "summary.json").read_text())
    records = summary["members"]
    model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    networks = member_networks(model)
    if len(networks) != len(records):
        raise SystemExit(f"{model_path} averages {len(networks)} networks but "
                         f"{card / 'summary.json'} records {len(records)} members")
    planned = {}  # run directory name -> (args, wall_s, history rows, network or None)
    for i, (record, network) in enumerate(zip(records, networks, strict=True)):
        history = pd.read_csv(card / ("history.csv" if i == 0 else f"history-{i}.csv"))
        for j, run in enumerate(record["runs"]):
            name = Path(run["args"]["out"]).name
            rows = history[history["run"] == j].drop(columns="run").copy()
            rows["epoch"] = range(len(rows))
            last = j == len(record["runs"]) - 1
            planned.setdefault(name, [run["args"], run["wall_s"], rows, None])
            if last:
                planned[name][3] = network
    existing = [out / name for name in planned if (out / name).exists()]
    if existing:
        raise SystemExit(f"not overwriting {', '.join(map(str, existing))}")
    for name, (args, wall_s, rows, network) in planned.items():
        run = out / name
        run.mkdir(parents=True)
        # Chain links point inside OUT, so package_default_model can follow them.
        args = dict(args, out=str(run), restored_from=str(model_path))
        if args.get("init_from"):
            args["init_from"] = str(out / Path(args["init_from"]).parent.name / "final.keras")
        write_json(run / "args.json", args)
        write_json(run / "classes.json", classes)
        write_json(run / "done.json", {"wall_s": wall_s})
        atomic_write(run / "history.csv", lambda fh, rows=rows: rows.to_csv(fh, index=False))
        if network is not None:
            net = create_model(args["backbone"], input_size=network.input_shape[1],
                               n_classes=len(classes))
            net.set_weights(network.get_weights())
            net.save(run / "final.keras")
        print(f"wrote {run}" + (" (final.keras)" if network is not None else ""))
    return [out / Path(r["runs"][-1]["args"]["out"]).name for r in records]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "src" / "fervision" / "models" / "default.keras"))
    p.add_argument("--card", default=str(ROOT / "docs" / "_static" / "model_card"))
    p.add_argument("--out", default="runs")
    args = p.parse_args(argv)
    from fervision import EmotionClassifier

    classes = EmotionClassifier.load(args.model).classes_.tolist()
    unpack(Path(args.model), Path(args.card), Path(args.out), classes)


if __name__ == "__main__":
    main()
