"""Tests of the consumer image: built with podman from consumer/Dockerfile and run against the suite's
Kafka and emulator (local_stack/container/setup.sh prepares podman and the base image)."""
