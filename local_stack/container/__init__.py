"""Containers on these machines: podman + runc set up for the consumer image (setup.sh, conf)."""
