#!/bin/sh
# the CMD: it runs once the services are ready (IGNITY_CMD_WAIT_FOR_SERVICES=1); its exit status
# becomes the container's
echo "cmd: services are up:"
ignity status
echo "cmd: starting the worker, which has a down file, and waiting until it is ready"
ignity svc -u worker
ignity wait -U -t 5000 worker
ignity status worker
echo "cmd: exiting 3: the container exits 3"
exit 3
