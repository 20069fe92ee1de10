#!/bin/sh
# The CMD: the container's main process. ignity starts it once the services are ready
# (IGNITY_CMD_WAIT_FOR_SERVICES=1), forwards HUP/USR1/USR2/WINCH to it, sends it the stop
# signal, and the container exits with its status.
trap 'echo "cmd: USR1 received"' USR1
trap 'echo "cmd: TERM received, exiting"; exit 0' TERM
echo "cmd: the app answers: $(python3 -c 'import os, urllib.request; print(urllib.request.urlopen(os.environ["APP_URL"]).read().decode().strip())')"
while :; do
    sleep 3600 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
done
