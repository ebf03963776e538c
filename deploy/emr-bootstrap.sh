#!/usr/bin/env bash
# EMR bootstrap action: installs Orchard on every node of the cluster, in its own venv
# (/opt/orchard/venv), from a wheelhouse folder in S3 that holds the portable orchard wheel
# (deploy/build-wheel: manylinux_2_31, native libraries, ONNX Runtime and the default model
# inside) and its dependency wheels (deploy/make-wheelhouse). Nothing comes from PyPI, so
# nodes in a private subnet install too. Then the node tests itself (python -m
# orchard.selftest: the engine loads, featurizes a bundled photo to the reference
# descriptor, and reads the orchard wheel back from S3 with orchard's own S3 client), and a
# failure fails the bootstrap, hence the cluster, at start-up with the step named.
# EMR 7.1 or later (Python 3.11; EMR 7.0 has 3.9 only) or EMR 8. See docs/aws.md.
#
#   emr-bootstrap.sh --wheelhouse s3://BUCKET/orchard/wheels/
#                    [--models s3://BUCKET/orchard/models/] [--prefix /opt/orchard]
#                    [--python python3.11] [--s3-endpoint URL]
#
# The wheelhouse may also be a local folder (tests). s3:// sources are fetched with the AWS
# CLI of the node (the instance profile needs s3:ListBucket on the folder and s3:GetObject
# in it). Spark must then run the venv's Python: spark.pyspark.python=/opt/orchard/venv/bin/python
# (deploy/emr-configurations.json). Re-running it replaces the venv (built beside, then moved).
set -euo pipefail

wheelhouse=""
models=""
prefix="/opt/orchard"
python="python3.11"
s3_endpoint=""

usage() {
  sed -n '2,21p' "$0" >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheelhouse) wheelhouse="${2:?}"; shift 2 ;;
    --models) models="${2:?}"; shift 2 ;;
    --prefix) prefix="${2:?}"; shift 2 ;;
    --python) python="${2:?}"; shift 2 ;;
    --s3-endpoint) s3_endpoint="${2:?}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "emr-bootstrap: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n "$wheelhouse" ]] || { echo "emr-bootstrap: --wheelhouse is required" >&2; usage; }

log() { echo "emr-bootstrap: $*" >&2; }
step="starting"
on_exit() {
  local rc=$?
  [[ $rc -eq 0 ]] || log "FAILED (exit $rc) while $step"
  rm -rf "${work:-}"
}
trap on_exit EXIT
sudo_cmd=()
[[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)

# Copies a folder's files from s3:// or a local path.
fetch_folder() {
  local src="${1%/}/" dst="$2"
  case "$src" in
    s3://*) aws s3 cp --only-show-errors --recursive "$src" "$dst" ;;
    *) cp -r "$src." "$dst" ;;
  esac
}

step="finding $python"
if ! command -v "$python" >/dev/null 2>&1; then
  if command -v dnf >/dev/null 2>&1; then  # Amazon Linux 2023 packages 3.11 beside its 3.9
    log "installing $python"
    "${sudo_cmd[@]}" dnf install -y -q "$python"
  else
    log "$python not found and no dnf to install it"
    exit 1
  fi
fi
tag="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"

step="fetching the wheelhouse $wheelhouse"
work="$(mktemp -d)"
mkdir -p "$work/wheels"
fetch_folder "$wheelhouse" "$work/wheels"
shopt -s nullglob
orchard_wheels=("$work"/wheels/orchard_features-*-"$tag"-"$tag"-manylinux_*.whl)
shopt -u nullglob
if [[ ${#orchard_wheels[@]} -ne 1 ]]; then
  log "expected one orchard wheel for $tag in $wheelhouse, found ${#orchard_wheels[@]}:" \
    "$(cd "$work/wheels" && ls)"
  exit 1
fi
orchard_wheel="${orchard_wheels[0]}"
requirements=()
[[ -f "$work/wheels/emr-requirements.txt" ]] && requirements=(-r "$work/wheels/emr-requirements.txt")

step="installing $(basename "$orchard_wheel") into $prefix/venv"
log "$step"
"${sudo_cmd[@]}" mkdir -p "$prefix"
"${sudo_cmd[@]}" rm -rf "$prefix/venv.new"
"${sudo_cmd[@]}" "$python" -m venv "$prefix/venv.new"
# --no-index: only the wheelhouse, never PyPI (private subnets; the same bytes on every node).
"${sudo_cmd[@]}" "$prefix/venv.new/bin/python" -m pip install -q --no-cache-dir \
  --disable-pip-version-check --no-index --find-links "$work/wheels" \
  "${requirements[@]}" "$orchard_wheel"

model_path=""
if [[ -n "$models" ]]; then
  step="copying models from $models"
  "${sudo_cmd[@]}" mkdir -p "$prefix/models"
  fetch_folder "$models" "$work/models.new"
  "${sudo_cmd[@]}" cp -r "$work/models.new/." "$prefix/models/"
  model_path="$prefix/models"
fi

step="self-testing the install on this node"
check=()
if [[ "$wheelhouse" == s3://* ]]; then
  check=(--read "${wheelhouse%/}/$(basename "$orchard_wheel")")
  [[ -z "$s3_endpoint" ]] || check+=(--s3-endpoint "$s3_endpoint")
fi
ORCHARD_MODEL_PATH="$model_path" "$prefix/venv.new/bin/python" -m orchard.selftest "${check[@]}"

step="putting the venv in place"
"${sudo_cmd[@]}" rm -rf "$prefix/venv"
"${sudo_cmd[@]}" mv "$prefix/venv.new" "$prefix/venv"
# The venv was created as venv.new: its scripts' shebangs name that path; the interpreter
# itself (bin/python) is what Spark runs, and it does not depend on the folder's name.
printf 'PYSPARK_PYTHON=%s\nORCHARD_MODEL_PATH=%s\n' "$prefix/venv/bin/python" "$model_path" \
  | "${sudo_cmd[@]}" tee "$prefix/env" >/dev/null
step="done"
log "done: set spark.pyspark.python=$prefix/venv/bin/python${model_path:+ and spark.executorEnv.ORCHARD_MODEL_PATH=$model_path}"
