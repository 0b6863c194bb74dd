"""Fixtures shared by every tier: the product's tests in tests/ and the local
environment's own tests in localenv/tests/."""

pytest_plugins = ["tests.fixtures", "tests.cluster.fixtures", "tests.cluster.operator_fixtures"]
