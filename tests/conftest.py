"""Test-suite wiring: the fixtures of the local stack (real Kafka, emulator, wsk, wskdeploy)."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.tools",
    "tests.fixtures.emulator",
    "tests.fixtures.messaging",
]
