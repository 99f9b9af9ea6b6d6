#!/usr/bin/env bash
# `make test-containers`: build the image of deploy/Dockerfile and run real
# containers with podman (tests/containers/). Usage: run.sh PYTHON
#
#  1. checks that this machine can run podman containers (one line and exit 1 if not);
#  2. installs podman, runc and debootstrap with apt-get when root and missing;
#  3. writes its own containers.conf (CONTAINERS_CONF) for this host's limits;
#  4. makes a Python base image from Debian's packages (no registry needed) or
#     reuses the one a previous run left (by name: $BASE_IMAGE);
#  5. builds deploy/Dockerfile on it with the driver's dask/distributed versions;
#  6. runs the pytest tests in tests/containers/ against it;
#  7. removes, by name, every container, pod and image this run created (the
#     base image stays as a cache), whatever happened.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:?usage: run.sh PYTHON}
BASE_IMAGE=${DASKBENCH_BASE_IMAGE:-localhost/daskbench-base:bookworm}
SUITE=bookworm   # its python3 is 3.11, like python:3.11-slim

say() { echo "test-containers: $*"; }
die() { echo "test-containers: $*" >&2; exit 1; }
phase_start=$SECONDS
phase() { say "$1 ($((SECONDS - phase_start))s)"; phase_start=$SECONDS; }

# -- 1-2. can this machine run containers? ------------------------------------
[ "$(id -u)" = 0 ] || die "cannot run here: needs root (podman runs the containers as root and debootstrap builds the base image); run it as root"
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "cannot run here: ${missing[*]} missing and no apt-get to install them"
    say "installing podman runc debootstrap"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap; } >/dev/null 2>&1 \
        || die "cannot run here: apt-get install podman runc debootstrap failed"
    phase "installed"
fi

STATE=$(mktemp -d -t daskbench-containers.XXXXXX)
RUN_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
PREFIX="dbct-$RUN_ID"              # every container, pod and image of this run starts with it
IMAGE="localhost/$PREFIX:latest"

# -- 3. containers.conf -------------------------------------------------------
# podman asks for nofile=1048576 and nproc above 32768 by default; where root
# cannot raise its own hard limits every container fails in setrlimit. crun
# refuses hosts with mixed cgroup v1/v2; runc runs there and elsewhere.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu); { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
export CONTAINERS_CONF="$STATE/containers.conf"
{
    echo "[containers]"
    echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
    echo "[engine]"
    echo "runtime = \"runc\""
    if [ ! -d /run/systemd/system ]; then   # no systemd: no systemd cgroups, no journald
        echo "cgroup_manager = \"cgroupfs\""
        echo "events_logger = \"file\""
    fi
} >"$CONTAINERS_CONF"

pause_before=$(podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -c '/podman-pause:' || true)

cleanup() {
    local rc=$?
    set +e
    local pods containers
    pods=$(podman pod ls --format '{{.Name}}' 2>/dev/null | grep "^$PREFIX-")
    [ -n "$pods" ] && podman pod rm -f $pods >/dev/null 2>&1
    containers=$(podman ps -a --format '{{.Names}}' 2>/dev/null | grep "^$PREFIX-")
    [ -n "$containers" ] && podman rm -f $containers >/dev/null 2>&1
    podman rmi -f "$IMAGE" "localhost/$PREFIX-base:latest" >/dev/null 2>&1
    # kube play builds podman's pause image on first use; remove it if this run made it
    if [ "$pause_before" = 0 ]; then
        for img in $(podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep '/podman-pause:'); do
            podman rmi "$img" >/dev/null 2>&1
        done
    fi
    rm -rf "$STATE"
    say "finished in ${SECONDS}s (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

podman info >/dev/null 2>"$STATE/info.err" || die "cannot run here: podman info failed: $(head -n1 "$STATE/info.err")"

# -- 4. the base image --------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
    say "base image $BASE_IMAGE (cached)"
else
    say "making the base image $BASE_IMAGE with debootstrap ($SUITE)"
    mirror=http://deb.debian.org/debian
    if grep -qs '^ID=debian' /etc/os-release; then   # the mirror apt already uses here
        found=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        [ -n "$found" ] || found=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        [ -n "$found" ] && mirror=$found
    fi
    rootfs="$STATE/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$STATE/debootstrap.log" >&2; die "debootstrap $SUITE from $mirror failed"; }
    # pip in the build must trust what the host trusts (e.g. a TLS-inspecting proxy's CA)
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the base image"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/*
    # imported under this run's name, then tagged: a concurrent run never sees half an image
    tar -C "$rootfs" -c . | podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        - "localhost/$PREFIX-base:latest" >/dev/null
    podman tag "localhost/$PREFIX-base:latest" "$BASE_IMAGE"
    podman rmi "localhost/$PREFIX-base:latest" >/dev/null
    rm -rf "$rootfs"
    phase "base image made"
fi

# -- 5. the image -------------------------------------------------------------
# The driver's versions: pickled tasks and results cross between driver and containers.
read -r DASK_V DISTRIBUTED_V PINS < <("$PY" - <<'EOF'
from importlib.metadata import version
pins = " ".join(f"{p}=={version(p)}" for p in ("cloudpickle", "msgpack", "tornado", "toolz", "numpy", "pandas", "pyarrow"))
print(version("dask"), version("distributed"), pins)
EOF
)
say "building $IMAGE from deploy/Dockerfile (dask $DASK_V, distributed $DISTRIBUTED_V)"
podman build --pull=never --format docker --layers=false --network host -f deploy/Dockerfile \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "DASK_VERSION=$DASK_V" \
    --build-arg "DISTRIBUTED_VERSION=$DISTRIBUTED_V" --build-arg "PINS=$PINS" \
    -t "$IMAGE" . >"$STATE/build.log" 2>&1 \
    || { tail -n 30 "$STATE/build.log" >&2; die "podman build of deploy/Dockerfile failed"; }
phase "image built: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

# -- 6. the tests -------------------------------------------------------------
export DASKBENCH_CT_IMAGE="$IMAGE" DASKBENCH_CT_PREFIX="$PREFIX" DASKBENCH_CT_REQUIRED=1
set +e
"$PY" -m pytest tests/containers -ra -p no:cacheprovider --durations=5
rc=$?
set -e
phase "tests done"
# pytest's 5 means it collected nothing: never a pass
[ "$rc" = 5 ] && die "pytest collected no container tests"
exit "$rc"
