"""Fixtures of the binding's tests: a small synthetic dataset written by the
library (cbrec.synth) and one model trained on it, shared by the session so
the suite stays a few seconds long. The CLI binary ($CBREC, default ./cbrec
at the repository root) is used by the CLI-agreement test."""
import os

import pytest

import cbrec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    cbrec.synth(str(d), users=150, items=200, ratings=4000, seed=7)
    return str(d)


@pytest.fixture(scope="session")
def dataset(synth_dir):
    return cbrec.Dataset.load(synth_dir)


@pytest.fixture(scope="session")
def model(dataset):
    return cbrec.Model.train(dataset, epochs=2, seed=3)


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("CBREC") or os.path.join(ROOT, "cbrec")
    if not os.path.isabs(path):
        path = os.path.join(ROOT, path)
    if not os.access(path, os.X_OK):
        pytest.skip("no cbrec binary at %s (run make)" % path)
    return path
