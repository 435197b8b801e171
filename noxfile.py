"""nox sessions: ``tests``, ``doctests``, ``tests_lowest``, ``lint``, ``docs`` (``nox -s NAME``)."""

import pathlib
import re

import nox

nox.options.sessions = ["lint", "tests", "doctests"]

ROOT = pathlib.Path(__file__).parent

# The part of the suite ``tests_lowest`` runs when given no arguments: the modules that
# import every direct dependency (TensorFlow/Keras through the classifier, backbones and
# augmentation layers, scikit-learn, SciPy via the audit, ml_dtypes, OpenCV's detectors,
# Pillow's header reader, pooch, Matplotlib, Dask), without the slow trainings.
# ``nox -s tests_lowest -- tests`` runs everything.
LOWEST_DEFAULT_ARGS = ["-m", "not slow", "-p", "no:cacheprovider", "tests"]


def _load_pyproject():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def lowest_constraints(extras=("test",)):
    """Pin every direct dependency (and those of `extras`) to its declared floor.

    The floor is the version of a ``>=`` or ``==`` specifier; requirements without one
    are left free (they are reported, so that a new one does not go untested unnoticed).
    Returns ``(lines, unpinned)`` for a pip constraints file (names only: constraints
    take no extras).
    """
    from packaging.requirements import Requirement

    project = _load_pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    pins, unpinned = {}, []
    for text in reqs:
        req = Requirement(text)
        floors = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if not floors:
            unpinned.append(name)
            continue
        floor = max(floors, key=lambda v: tuple(int(p) for p in re.findall(r"\d+", v)))
        if pins.get(name, floor) != floor:
            raise ValueError(f"{name}: two different floors, {pins[name]} and {floor}")
        pins[name] = floor
    return [f"{name}=={version}" for name, version in sorted(pins.items())], unpinned


@nox.session
def tests(session):
    """Install with the test extra and run the whole suite (README's test command)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *(session.posargs or ["-n", "auto"]))


@nox.session
def doctests(session):
    """Run the examples in the docstrings (pyproject sets the doctest option flags)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "--doctest-modules", "src/fervision", *session.posargs)


@nox.session(python="3.11")
def tests_lowest(session):
    """Install the lowest declared version of every direct dependency and run the tests.

    On the lowest supported Python.  Without arguments it runs ``LOWEST_DEFAULT_ARGS``
    (the suite without ``slow`` tests); pass pytest arguments after ``--`` to choose.
    """
    lines, unpinned = lowest_constraints()
    if unpinned:
        session.warn(f"no floor declared, not pinned: {', '.join(unpinned)}")
    constraints = pathlib.Path(session.create_tmp()) / "lowest-constraints.txt"
    constraints.write_text("\n".join(lines) + "\n")
    session.log("constraints:\n" + "\n".join(lines))
    session.install("--only-binary=:all:", "-c", str(constraints), "-e", ".[test]")
    session.run("python", "-m", "pip", "list")
    # The installed floors, checked (pip honours -c, but a silent upgrade would make
    # this session test something else).
    session.run("python", "-c", _CHECK_PINS, str(constraints))
    # The src layout keeps the checkout's package off sys.path: the installed one is tested.
    session.run("python", "-m", "pytest", *(session.posargs or LOWEST_DEFAULT_ARGS))


_CHECK_PINS = """
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
wrong = []
for line in open(sys.argv[1]).read().split():
    req = Requirement(line)
    got = version(req.name)
    if not req.specifier.contains(got, prereleases=True):
        wrong.append(f"{req.name} {got} (wanted {req.specifier})")
sys.exit("not at the floor: " + ", ".join(wrong) if wrong else 0)
"""


@nox.session
def lint(session):
    """Run ruff's linter (``ruff format --check`` joins once the restructuring is in)."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "tools", "benchmarks", "examples", "noxfile.py")


@nox.session
def docs(session):
    """Build the Sphinx docs with the gallery, warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
