"""Tests of what deploys and runs the project: deploy.sh, the consumer image, compose and Kubernetes."""
