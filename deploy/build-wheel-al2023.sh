#!/usr/bin/env bash
# Builds the Amazon Linux 2023 wheel of Orchard (deploy/Dockerfile.wheel-al2023) from the
# committed tree (git archive: no venv, build folders or local edits in the context), and
# optionally uploads it to S3 for deploy/emr-bootstrap.sh.
#
#   deploy/build-wheel-al2023.sh                        # -> dist/orchard_features-*-manylinux_2_34_x86_64.whl
#   deploy/build-wheel-al2023.sh s3://BUCKET/orchard/   # and uploads the wheel and deploy/ files there
#
# Needs docker (or podman: DOCKER=podman) and, to upload, the AWS CLI. About 30-40 minutes
# the first time on 4 vCPUs (OpenCV and OpenBLAS are compiled), minutes after.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
docker="${DOCKER:-docker}"
image="${ORCHARD_WHEEL_IMAGE:-orchard-wheel-al2023}"
dest="${1:-}"

mkdir -p "$repo/dist"
git -C "$repo" archive --format=tar HEAD \
  | "$docker" build -f deploy/Dockerfile.wheel-al2023 -t "$image" -
"$docker" run --rm -v "$repo/dist:/out" "$image"
shopt -s nullglob
wheels=("$repo"/dist/orchard_features-*manylinux_2_34_x86_64.whl)
[[ ${#wheels[@]} -gt 0 ]] || { echo "no wheel in $repo/dist" >&2; exit 1; }
wheel="${wheels[-1]}"
echo "built $wheel"

if [[ -n "$dest" ]]; then
  dest="${dest%/}"
  aws s3 cp --only-show-errors "$wheel" "$dest/wheels/$(basename "$wheel")"
  for f in emr-bootstrap.sh emr-requirements.txt; do
    aws s3 cp --only-show-errors "$repo/deploy/$f" "$dest/deploy/$f"
  done
  echo "uploaded to $dest/wheels/ and $dest/deploy/"
fi
