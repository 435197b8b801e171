"""nox sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s docs``."""

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session):
    """Install with the test extra and run the whole suite (README's test command)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def docs(session):
    """Build the Sphinx docs with the gallery, warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
