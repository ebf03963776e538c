#!/usr/bin/env bash
# EMR bootstrap action: installs Orchard on every node of the cluster, in its own Python 3.11
# venv (/opt/orchard/venv), from the Amazon Linux 2023 wheel that deploy/build-wheel-al2023.sh
# builds (all native libraries bundled: nodes need no OpenCV, OpenBLAS or TurboJPEG).
# Then checks on the node itself that the package imports and loads its model, so a broken
# install fails the cluster at start-up, not the first Spark task. See docs/aws.md.
#
#   emr-bootstrap.sh --wheel s3://BUCKET/orchard/wheels/orchard_features-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl
#                    [--requirements s3://BUCKET/orchard/deploy/emr-requirements.txt]
#                    [--models s3://BUCKET/orchard/models/] [--prefix /opt/orchard]
#                    [--python python3.11]
#
# Sources may be s3:// (AWS CLI, present on EMR nodes; the instance profile needs
# s3:GetObject on them), https:// or local paths. Spark must then run the venv's Python:
# spark.pyspark.python=/opt/orchard/venv/bin/python (EMR "spark-defaults" classification,
# or spark-submit --conf). Re-running it replaces the venv (it is built beside, then moved).
set -euo pipefail

wheel=""
requirements=""
models=""
prefix="/opt/orchard"
python="python3.11"

usage() {
  sed -n '2,19p' "$0" >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheel) wheel="${2:?}"; shift 2 ;;
    --requirements) requirements="${2:?}"; shift 2 ;;
    --models) models="${2:?}"; shift 2 ;;
    --prefix) prefix="${2:?}"; shift 2 ;;
    --python) python="${2:?}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "emr-bootstrap: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n "$wheel" ]] || { echo "emr-bootstrap: --wheel is required" >&2; usage; }

log() { echo "emr-bootstrap: $*" >&2; }
sudo_cmd=()
[[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)

# Copies one file from s3://, http(s):// or a local path.
fetch() {
  local src="$1" dst="$2"
  case "$src" in
    s3://*) aws s3 cp --only-show-errors "$src" "$dst" ;;
    http://*|https://*) curl -fsSL --retry 5 -o "$dst" "$src" ;;
    *) cp "$src" "$dst" ;;
  esac
}

# Python 3.11: Amazon Linux 2023 ships it as a package beside its default 3.9.
if ! command -v "$python" >/dev/null 2>&1; then
  if command -v dnf >/dev/null 2>&1; then
    log "installing $python"
    "${sudo_cmd[@]}" dnf install -y -q "$python" "$python-pip"
  else
    log "$python not found and no dnf to install it"
    exit 1
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wheel_file="$work/$(basename "$wheel")"
fetch "$wheel" "$wheel_file"
if [[ -n "$requirements" ]]; then
  fetch "$requirements" "$work/requirements.txt"
else
  # The pins of deploy/emr-requirements.txt, for a bootstrap given only the wheel.
  printf '%s\n' numpy==1.26.4 pyarrow==16.1.0 pandas==2.2.3 > "$work/requirements.txt"
fi

log "creating the venv in $prefix"
"${sudo_cmd[@]}" mkdir -p "$prefix"
"${sudo_cmd[@]}" rm -rf "$prefix/venv.new"
"${sudo_cmd[@]}" "$python" -m venv "$prefix/venv.new"
"${sudo_cmd[@]}" "$prefix/venv.new/bin/python" -m pip install -q --no-cache-dir \
  --disable-pip-version-check -r "$work/requirements.txt"
# --no-deps: numpy is pinned above (the cluster's PySpark is not ready for numpy 2).
"${sudo_cmd[@]}" "$prefix/venv.new/bin/python" -m pip install -q --no-cache-dir \
  --disable-pip-version-check --no-deps "$wheel_file"

model_path=""
if [[ -n "$models" ]]; then
  log "copying models from $models"
  "${sudo_cmd[@]}" mkdir -p "$prefix/models"
  case "$models" in
    s3://*) "${sudo_cmd[@]}" aws s3 cp --only-show-errors --recursive "$models" "$prefix/models/" ;;
    *) "${sudo_cmd[@]}" cp -r "${models%/}/." "$prefix/models/" ;;
  esac
  model_path="$prefix/models"
fi

# The check runs on this node, with the bundled libraries only.
log "checking the install"
ORCHARD_MODEL_PATH="$model_path" "$prefix/venv.new/bin/python" - <<'PY'
import numpy as np
import orchard

f = orchard.Featurizer()  # the mobilenet_v2 preset shipped in the wheel
acc = orchard.PcaAccumulator(f.dim)
acc.update(np.random.default_rng(0).standard_normal((4, f.dim)).astype(np.float32))
info = orchard.build_info()
print(f"emr-bootstrap: orchard {orchard.__version__} ok: {f!r}, OpenCV {info['opencv']}, "
      f"{info['openblas']}, CPU {info['cpu_features']}")
PY

"${sudo_cmd[@]}" rm -rf "$prefix/venv"
"${sudo_cmd[@]}" mv "$prefix/venv.new" "$prefix/venv"
# The venv was created as venv.new: its scripts' shebangs name that path; the interpreter
# itself (bin/python) is what Spark runs, and it does not depend on the folder's name.
printf 'PYSPARK_PYTHON=%s\nORCHARD_MODEL_PATH=%s\n' "$prefix/venv/bin/python" "$model_path" \
  | "${sudo_cmd[@]}" tee "$prefix/env" >/dev/null
log "done: set spark.pyspark.python=$prefix/venv/bin/python${model_path:+ and spark.executorEnv.ORCHARD_MODEL_PATH=$model_path}"
