"""python -m orchard.selftest [--read s3://bucket/key] [--s3-endpoint URL]: exit 0 and one
line when this install works, exit 1 and the reason otherwise."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from orchard.selftest import SelfTestError, run


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchard.selftest", description=__doc__)
    parser.add_argument("--read", help="an s3://bucket/key to read with orchard's S3 client")
    parser.add_argument("--s3-endpoint", help="S3-compatible endpoint (default: AWS)")
    args = parser.parse_args(argv)
    try:
        report = run(read=args.read, s3_endpoint=args.s3_endpoint)
    except SelfTestError as exc:
        print(f"orchard.selftest: FAILED: {exc}", file=sys.stderr)
        return 1
    build = report["build"]
    line = (f"orchard.selftest: ok: orchard {report['version']}, descriptor cosine "
            f"{report['cosine_to_reference']:.7f} to the reference, OpenCV {build.get('opencv')}, "
            f"{build.get('openblas')}, CPU {build.get('cpu_features')}")
    if "s3_read_bytes" in report:
        line += f", read {args.read} ({report['s3_read_bytes']} bytes)"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
