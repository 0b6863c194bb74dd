"""The local environment's own tests: they prove the cluster, node and images the
product's tests stand on, and are marked `localenv`, not the product's."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "localenv/tests" in str(item.path):
            item.add_marker(pytest.mark.localenv)
    # The up/down cycles stop the session's cluster (one real node per machine): last.
    cycles = [item for item in items if item.get_closest_marker("node_cycles")]
    items[:] = [item for item in items if item not in cycles] + cycles
