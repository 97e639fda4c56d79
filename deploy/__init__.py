"""Deployment helpers: `python -m deploy.tool` (called by ./deploy.sh), the docker-compose example and the
Kubernetes manifests of the consumer."""
