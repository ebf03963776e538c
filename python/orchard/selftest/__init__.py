"""A self-test of an installed orchard: the native engine loads, featurizes a bundled photo
to the descriptor the reference build computes, and (optionally) reads an S3 object through
the package's own S3 client (credentials, CA certificates, endpoint).

    python -m orchard.selftest [--read s3://bucket/key] [--s3-endpoint URL]

deploy/emr-bootstrap.sh runs it on every node so that a broken install fails the cluster at
start-up, not the first Spark task. The photo is from Fruits-360 (CC BY-SA 4.0, see
ATTRIBUTION.txt beside it).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np

import orchard

_HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.path.join(_HERE, "orange.jpg")
REFERENCE = os.path.join(_HERE, "orange_mobilenet_v2.npy")
# Builds differ in BLAS kernels and summation order, not in what they compute: the reference
# descriptor (Debian 12 build) and a correct install agree to ~1e-6 relative.
MIN_COSINE = 0.9999


class SelfTestError(orchard.OrchardError):
    """The installed orchard does not work on this machine; the message says which step."""


def run(read: Optional[str] = None, s3_endpoint: Optional[str] = None) -> Dict[str, Any]:
    """Runs the checks; returns what they measured, or raises SelfTestError."""
    report: Dict[str, Any] = {"version": orchard.__version__, "build": orchard.build_info()}
    try:
        featurizer = orchard.Featurizer()  # the default preset, shipped in the package
        with open(IMAGE, "rb") as f:
            result = featurizer.featurize([f.read()])
    except orchard.OrchardError as exc:
        raise SelfTestError(f"the engine could not featurize {IMAGE}: {exc}") from exc
    if result.errors:
        raise SelfTestError(f"the engine refused {IMAGE}: {result.errors[0].message}")
    got = np.asarray(result.features[0], dtype=np.float64)
    want = np.load(REFERENCE).astype(np.float64)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        raise SelfTestError(f"descriptor of shape {got.shape} (finite: {np.isfinite(got).all()}), "
                            f"expected {want.shape}")
    cosine = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want)))
    report["cosine_to_reference"] = cosine
    if not cosine >= MIN_COSINE:
        raise SelfTestError(f"the descriptor of the bundled photo differs from the reference "
                            f"build's (cosine {cosine:.6f} < {MIN_COSINE}): preprocessing, model "
                            "or BLAS is broken in this install")
    if read:
        location, _, key = read.rpartition("/")
        if not location.startswith("s3://") or not key:
            raise SelfTestError(f"--read needs s3://bucket/key, got {read!r}")
        try:
            data = orchard.Storage(location, s3_endpoint=s3_endpoint).read(key)
        except orchard.OrchardError as exc:
            raise SelfTestError(f"could not read {read} with orchard's S3 client: {exc}") from exc
        report["s3_read_bytes"] = len(data)
    return report
