#!/usr/bin/env bash
# Prepare a machine for the end-to-end tests (idempotent; a second run takes about a second):
#   1. podman with runc (Debian packages podman runc conmon mmdebstrap);
#   2. a containers.conf.d drop-in: runc, cgroupfs, file events, and default ulimits that the
#      host's hard limits allow (runc cannot raise them: it fails with "error setting rlimits");
#   3. the base image localhost/ignity-e2e-base: Debian bookworm minbase + python3 (3.11), built
#      with mmdebstrap from the machine's Debian mirror and `podman import`ed. No registry is
#      needed: every container and build of the tests runs with --network none.
# Environment: IGNITY_E2E_BASE (image name), IGNITY_E2E_SUITE (bookworm), IGNITY_E2E_MIRROR.
set -euo pipefail

BASE=${IGNITY_E2E_BASE:-localhost/ignity-e2e-base}
SUITE=${IGNITY_E2E_SUITE:-bookworm}
DROPIN=/etc/containers/containers.conf.d/50-ignity-e2e.conf
log() { printf 'e2e setup: %s\n' "$*" >&2; }
t0=$(date +%s)

if [ "$(id -u)" != 0 ]; then
  log "needs root (rootful podman, apt-get)"; exit 1
fi

# ---- 1. packages
missing=()
for pkg in podman runc conmon mmdebstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  # with the recommended packages: the configuration these tests were written on
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---- 2. podman configuration
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
hard_n=$(ulimit -Hn); [ "$hard_n" = unlimited ] && hard_n=1048576
hard_u=$(ulimit -Hu); [ "$hard_u" = unlimited ] && hard_u=$pid_max
write_dropin() {  # write_dropin NOFILE NPROC
  mkdir -p "$(dirname "$DROPIN")"
  cat > "$DROPIN.tmp" <<EOF
# written by ignity's tests/e2e/setup.sh
[containers]
default_ulimits = ["nofile=$1:$1", "nproc=$2:$2"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  if ! cmp -s "$DROPIN.tmp" "$DROPIN" 2>/dev/null; then mv "$DROPIN.tmp" "$DROPIN"; else rm -f "$DROPIN.tmp"; fi
}
probe_image() {  # an image to try the runtime with: the base when it exists, else an empty one
  if podman image exists "$BASE"; then echo "$BASE"; return; fi
  if ! podman image exists localhost/ignity-e2e-probe; then
    tar -cf - -T /dev/null | podman import -q - localhost/ignity-e2e-probe >/dev/null
  fi
  echo localhost/ignity-e2e-probe
}
runtime_works() {
  local out
  out=$(podman run --rm --network none --entrypoint /nonexistent "$(probe_image)" 2>&1) && return 0
  # an empty image has nothing to exec: that error comes after the rlimits were set
  case $out in *rlimit*|*"OCI permission denied"*) return 1 ;; *) return 0 ;; esac
}
ok=
# podman lowers its own RLIMIT_NPROC to pid_max, and runc (not root in every sense here: no
# CAP_SYS_RESOURCE) cannot go above what podman has
for nproc in "$(( hard_u < pid_max ? hard_u : pid_max ))" 16384 4096; do
  for nofile in "$hard_n" 4096 1024; do
    write_dropin "$nofile" "$nproc"
    if runtime_works; then ok="nofile=$nofile nproc=$nproc"; break 2; fi
  done
done
[ -n "$ok" ] || { log "podman cannot start a container here (see: podman run --rm $BASE true)"; exit 1; }
podman image rm -f localhost/ignity-e2e-probe >/dev/null 2>&1 || true
log "podman $(podman version --format '{{.Client.Version}}') with runc, ulimits $ok"

# ---- 3. base image
if podman image exists "$BASE"; then
  log "base image $BASE exists"
else
  mirror=${IGNITY_E2E_MIRROR:-}
  if [ -z "$mirror" ]; then
    # the machine's own Debian mirror (deb822 or one-line sources), else deb.debian.org
    mirror=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
      /etc/apt/sources.list.d/*.list | grep -v -E 'security|nodesource|google|docker' |
      grep -o -E 'https?://[^ ]*/debian/?' | head -1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
  fi
  security=${mirror%/debian*}/debian-security
  log "building $BASE: mmdebstrap $SUITE minbase + python3 from $mirror"
  tar=$(mktemp --suffix=.tar)
  trap 'rm -f "$tar"' EXIT
  mmdebstrap --quiet --variant=minbase --include=python3 \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$tar" \
    "deb $mirror $SUITE main" "deb $mirror $SUITE-updates main" "deb $security $SUITE-security main"
  podman import -q --change 'CMD ["/bin/sh"]' "$tar" "$BASE" >/dev/null
  rm -f "$tar"
  log "base image $BASE: $(podman image inspect "$BASE" --format '{{.Size}}') bytes"
  runtime_works || { log "the base image does not run"; exit 1; }
fi
podman run --rm --network none "$BASE" python3 -c 'import sys; assert sys.version_info >= (3, 9)' ||
  { log "$BASE has no python3 >= 3.9"; exit 1; }
log "ready in $(( $(date +%s) - t0 )) s"
