"""The image deploy/Dockerfile builds: who it runs as, what it carries, what it pins."""

from __future__ import annotations

import json
from importlib.metadata import version

import podman_engine as pe

PROBE = """
import json, os, sys
import dask, distributed, daskbench
import daskbench.experiments.mmc_queue  # the shipped trials are importable where workers run
print(json.dumps({"uid": os.getuid(), "python": sys.version_info[:2], "dask": dask.__version__,
                  "distributed": distributed.__version__, "daskbench": daskbench.__version__,
                  "prefix": sys.prefix}))
"""


def test_image_runs_as_non_root_with_the_drivers_dask_and_distributed(image):
    out = json.loads(pe.podman("run", "--rm", "--network", "host", image, "python", "-c", PROBE).stdout)
    assert out["uid"] == 1000
    assert out["dask"] == version("dask") and out["distributed"] == version("distributed")
    assert out["daskbench"] == version("daskbench")
    assert out["python"][0] == 3 and out["python"][1] >= 11
    assert out["prefix"] == "/opt/daskbench"
    config = json.loads(pe.podman("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["User"] == "1000"


def test_image_has_a_healthcheck(image):
    health = json.loads(pe.podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).stdout)
    assert health and health["Test"] == ["CMD", "daskbench-healthcheck"]
    r = pe.podman(
        "run", "--rm", "--network", "host", image, "daskbench-healthcheck", "http://127.0.0.1:1/health", check=False
    )
    assert r.returncode == 1 and r.stdout.startswith("unhealthy: http://127.0.0.1:1/health")  # nothing listens there


# Run as root inside the image so nothing is hidden by permissions.
AUDIT = r"""
set -u
bad=0
for tool in gcc cc c++ g++ make ld as cpp git curl wget ssh; do
    if command -v "$tool" >/dev/null 2>&1; then echo "build or network tool: $tool"; bad=1; fi
done
for d in /usr/include/python3* /build /root/.cache /home/dask/.cache /root/.pip /root/.netrc /home/dask/.netrc \
         /etc/pip.conf /root/.config/pip /root/.docker /root/.ssh /home/dask/.ssh; do
    if [ -e "$d" ]; then echo "should not be in the image: $d"; bad=1; fi
done
keys=$(grep -rlIs --exclude-dir=site-packages -e 'PRIVATE KEY-----' \
    /etc /root /home /opt /usr/local /srv 2>/dev/null)
if [ -n "$keys" ]; then echo "private keys: $keys"; bad=1; fi
if env | cut -d= -f1 | grep -iE 'token|secret|passw|credential|_key$'; then
    echo "secret-like environment variables"; bad=1
fi
exit $bad
"""


def test_image_carries_no_build_tools_sources_or_secrets(image):
    r = pe.podman("run", "--rm", "--user", "0", "--network", "host", image, "sh", "-c", AUDIT, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
