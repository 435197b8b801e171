"""Turn a packaged model back into training-run directories.

    python tools/unpack_default_model.py --out runs

``package_default_model.py`` ships an average of finished runs (one ``.keras`` file) and
records, in the model card's ``summary.json`` and ``history*.csv``, every run of each
member's warm-restart chain.  This script goes the other way: for each member it writes
``OUT/<run name>/`` with ``final.keras`` (the member network as shipped: BatchNorm
recalibrated, float32), ``args.json``, ``classes.json``, ``history.csv`` and
``done.json``, and for the earlier runs of its chain the same files without
``final.keras``.  With them, ``train_default_model.py --init-from OUT/<run>/final.keras``
warm-starts from a shipped member, and ``compare_ensembles.py`` / ``package_default_model.py``
take the shipped members next to new runs, with their provenance intact.

A model that is no longer bundled comes back from the repository's history, e.g. the
two-network ensemble whose run 6 starts the FER+ models and the distilled fer2013
network (its card stays in ``docs/_static/model_card/fer2013-ensemble/``)::

    git show e2c7167:src/fervision/models/fer2013.keras > fer2013-ensemble.keras
    python tools/unpack_default_model.py --model fer2013-ensemble.keras \
        --card docs/_static/model_card/fer2013-ensemble --out runs/restored

A restored run's ``args.json`` says so (``restored_from``); its ``final.keras`` is the
shipped network, not the file its training wrote (which still had the training's moving
BatchNorm statistics), so the other scripts use it as it is: no second BatchNorm
recalibration, no "before recalibration" figure.  A soup (``package_default_model.py
--soup``) ships one network averaging its runs' weights: each run's folder is written
without ``final.keras`` (its own weights are not in the file), and the shipped network
gets a folder of its own, ``OUT/<run>+<run>/``, whose ``args.json`` names the runs
(``soup_of``).  Existing files are never overwritten.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from _common import ROOT

from fervision import EmotionClassifier
from fervision.files import atomic_write, write_json
from fervision.nn.backbones import create_model, member_models


def _needed_files(model_path: Path, card: Path) -> None:
    """Exit naming what is missing before anything is loaded or written."""
    missing = [str(p) for p in (model_path, card / "summary.json") if not p.is_file()]
    if missing:
        raise SystemExit(f"unpack needs {' and '.join(missing)}: not found")


def _run_name(recorded_out: str, card: Path) -> str:
    """Return the folder name a run recorded in ``card`` gets inside OUT.

    Only the last part of the recorded path is used, and one that would not name a
    folder inside OUT ("..", or nothing) is refused: the card does not choose where
    files are written.
    """
    name = Path(str(recorded_out)).name
    if name in ("", ".", ".."):
        raise SystemExit(f"{card / 'summary.json'}: a run recorded at {recorded_out!r} "
                         "has no folder name to unpack it under")
    return name


def unpack(model_path: Path, card: Path, out: Path) -> list[Path]:
    """Write one run directory per run recorded in ``card``; returns the members' runs.

    Everything is written into a staging folder inside ``out`` first and moved into
    place at the end, so a failure leaves no partial run directory behind.
    """
    _needed_files(model_path, card)
    summary = json.loads((card / "summary.json").read_text())
    records = summary["members"]
    clf = EmotionClassifier.load(model_path)  # safe_mode; the classes from its metadata
    model, classes = clf.model_, clf.classes_.tolist()
    networks = member_models(model) or [model]
    soup = summary.get("soup", False)
    if len(networks) != (1 if soup else len(records)):
        raise SystemExit(f"{model_path} averages {len(networks)} networks but "
                         f"{card / 'summary.json'} records {len(records)} members"
                         + (" of one soup" if soup else ""))
    if soup:  # one network, the mean of the members' weights; theirs are not in the file
        networks = [None] * len(records)
    planned = {}  # run directory name -> [args, wall_s, history rows, network or None]
    for i, (record, network) in enumerate(zip(records, networks, strict=True)):
        history_csv = card / ("history.csv" if i == 0 else f"history-{i}.csv")
        if not history_csv.is_file():
            raise SystemExit(f"{history_csv} not found: member {i}'s training history")
        history = pd.read_csv(history_csv)
        for j, run in enumerate(record["runs"]):
            name = _run_name(run["args"]["out"], card)
            rows = history[history["run"] == j].drop(columns="run").copy()
            rows["epoch"] = range(len(rows))
            entry = planned.setdefault(name, [run["args"], run["wall_s"], rows, None])
            if j == len(record["runs"]) - 1:  # the member's own run: its network
                entry[3] = network
    member_runs = [_run_name(r["runs"][-1]["args"]["out"], card) for r in records]
    if soup:  # the shipped network gets a run directory of its own, naming its runs
        args = {"backbone": records[0]["runs"][-1]["args"]["backbone"],
                "soup_of": member_runs}
        planned["+".join(member_runs)] = [args, None, pd.DataFrame({"epoch": []}), model]
    existing = [out / name for name in planned if (out / name).exists()]
    if existing:
        raise SystemExit(f"not overwriting {', '.join(map(str, existing))}")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".unpack-"))
    try:
        for name, (args, wall_s, rows, network) in planned.items():
            _write_run(staging / name, out / name, args, wall_s, rows, network, classes,
                       model_path, out)
        for name in planned:
            (staging / name).rename(out / name)
            print(f"wrote {out / name}"
                  + (" (final.keras)" if (out / name / "final.keras").exists() else ""))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / "+".join(member_runs)] if soup else [out / name for name in member_runs]


def _write_run(folder: Path, final: Path, args, wall_s, rows, network, classes,
               model_path: Path, out: Path) -> None:
    """One restored run directory in ``folder``, recorded as living at ``final``."""
    folder.mkdir()
    # Chain links point inside OUT, so package_default_model can follow them.
    args = dict(args, out=str(final), restored_from=str(model_path))
    if args.get("init_from"):
        args["init_from"] = str(out / Path(args["init_from"]).parent.name / "final.keras")
    write_json(folder / "args.json", args)
    write_json(folder / "classes.json", classes)
    write_json(folder / "done.json", {"wall_s": wall_s})
    atomic_write(folder / "history.csv", lambda fh: rows.to_csv(fh, index=False))
    if network is not None:
        net = create_model(args["backbone"], input_size=network.input_shape[1],
                           n_classes=len(classes))
        net.set_weights(network.get_weights())
        net.save(folder / "final.keras")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "src" / "fervision" / "models" / "fer2013.keras"),
                   help="a packaged model whose card (--card) records its runs (default: the "
                        "bundled fer2013 model)")
    p.add_argument("--card", default=str(ROOT / "docs" / "_static" / "model_card" / "fer2013"))
    p.add_argument("--out", default="runs")
    args = p.parse_args(argv)
    unpack(Path(args.model), Path(args.card), Path(args.out))


if __name__ == "__main__":
    main()
