"""The container image's tier: no image can be built on our machines, so its steps run
here, in a clean virtual environment, with the package index as the only network."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: installs from the package index, as the "
                                       "image build does")
