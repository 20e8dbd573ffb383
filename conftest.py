"""Registers the test fixture plugins; each plugin module is owned by the domain it serves."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.stack",
    "tests.fixtures.serve",
    "tests.fixtures.podman",
    "tests.fixtures.identity",
    "tests.fixtures.nodes",
    "tests.fixtures.tasks",
    "tests.fixtures.nodemanager",
    "tests.fixtures.inference",
    "tests.fixtures.browser",
    "tests.fixtures.chat",
    "tests.fixtures.cli",
    "tests.fixtures.operator",
    "tests.fixtures.deploy",
]
