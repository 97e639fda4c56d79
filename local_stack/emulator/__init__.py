"""A local emulator of the OpenWhisk controller REST API (see README.md in this directory)."""
