"""Fixtures shared by the test modules; plain helper functions are in ``helpers.py``."""

import pytest

from tests.helpers import REPO, remove_outputs, unique_name


@pytest.fixture
def new_name():
    """Unique experiment names; whatever they created under the repository is removed afterwards."""
    names = []
    absent = [folder for folder in ('results', 'tb_logger') if not (REPO / folder).exists()]

    def make(tag: str) -> str:
        names.append(unique_name(tag))
        return names[-1]

    yield make
    for name in names:
        remove_outputs(REPO, name)
    for folder in absent:  # the pipeline created it for this test only: remove it when nothing else is in it
        if (REPO / folder).is_dir() and not any((REPO / folder).iterdir()):
            (REPO / folder).rmdir()
