#!/usr/bin/env bash
# task demo: ignity as PID 1 of a fresh PID namespace over examples/demo, as in a container.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$(cd "$here/.." && pwd)/.venv
run_dir=$(mktemp -d /tmp/ignity-demo.XXXXXX)
trap 'rm -rf "$run_dir"' EXIT
export PATH="$venv/bin:$PATH" IGNITY_CONF_DIR="$here/demo" IGNITY_RUN_DIR="$run_dir/run" \
       IGNITY_CMD_WAIT_FOR_SERVICES=1 IGNITY_VERBOSITY="${IGNITY_VERBOSITY:-2}"
if [ "$(id -u)" = 0 ] && unshare --fork --pid --mount-proc true 2>/dev/null; then
  launcher=(unshare --fork --pid --mount-proc)
  echo "demo: ignity init as PID 1 of a new PID namespace (unshare --fork --pid --mount-proc)"
else
  launcher=()
  echo "demo: not root: ignity init as a child subreaper instead of PID 1"
fi
set +e
"${launcher[@]}" "$venv/bin/ignity" init "$here/demo/cmd.sh"
rc=$?
set -e
echo "demo: the container exited $rc"
[ "$rc" = 3 ]
