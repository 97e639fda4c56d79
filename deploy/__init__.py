"""Deployment helpers: `python -m deploy.tool` (called by ./deploy.sh), the docker-compose example and the
Kubernetes manifests of the consumer.

    tool.py       the command line: a parser and a dispatch table subcommand -> function
    openwhisk.py  the OpenWhisk API: the host and key check, deployed sealing keys, an activation
    topics.py     the Kafka topics: specs, create or check, delete, list
    sealing.py    one sealing key per Kafka cluster: its fingerprint recorded on the cluster, the check
    processes.py  the local processes of --local: spawn, stop, running, wait for a line or a URL
    ports.py      free local ports (shared with the test stack, which imports them from here)
    errors.py     DeployError (one sentence for the user) and the one polling wait

Product code: nothing here imports local_stack (tests/deploy/test_product_imports.py checks it).
"""
