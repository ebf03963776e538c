#!/usr/bin/env python3
"""S3 throughput: Orchard's native client vs boto3 (and the AWS CLI if installed), listing
and fetching many small objects from the local S3-compatible server, plus an end-to-end run
from S3 vs from local disk. All figures of one invocation are measured in the same run, so
compare them as ratios.

Needs the test server (scripts/s3-test-server start, or this script starts one) and
build/bench_s3_fetch (scripts/build)."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.s3 import fixtures as s3fx  # noqa: E402


def make_objects(client: Any, bucket: str, n: int, size: int, workers: int) -> None:
    payload = os.urandom(size)
    keys = [f"small/class_{i % 10}/obj_{i:06d}.jpg" for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=payload), keys))


def orchard_fetch(build: Path, url: str, threads: int, endpoint: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([str(build / "bench_s3_fetch"), url, str(threads), endpoint], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def boto3_fetch(client: Any, bucket: str, prefix: str, threads: int) -> dict[str, Any]:
    start = time.perf_counter()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    list_s = time.perf_counter() - start
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        sizes = list(pool.map(lambda k: len(client.get_object(Bucket=bucket, Key=k)["Body"].read()), keys))
    total = time.perf_counter() - start
    return {"objects": len(keys), "bytes": sum(sizes), "threads": threads, "list_seconds": list_s,
            "total_seconds": total, "objects_per_second": len(keys) / total}


def aws_cli_fetch(bucket: str, prefix: str, endpoint: str, env: dict[str, str]) -> dict[str, Any] | None:
    aws = shutil.which("aws")
    if aws is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([aws, "s3", "sync", f"s3://{bucket}/{prefix}", tmp, "--endpoint-url", endpoint,
                        "--only-show-errors"], env=env, check=True)
        total = time.perf_counter() - start
        n = sum(1 for _ in Path(tmp).rglob("*") if _.is_file())
    return {"objects": n, "total_seconds": total, "objects_per_second": n / total}


def end_to_end(build: Path, cfg: s3fx.S3TestConfig, client: Any, bucket: str, env: dict[str, str],
               repeats: int) -> dict[str, float]:
    local = REPO / "samples" / "fruits-360-mini" / "Training"
    s3fx.upload_folder(client, local, bucket, "fruits/")
    # --overwrite: each repeat writes the same output folder again.
    common = ["run", "-q", "--overwrite", "--pca-components", "8", "--s3-endpoint", cfg.endpoint]
    times: dict[str, float] = {"local": 1e9, "s3": 1e9}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for name, source in (("local", str(local)), ("s3", f"s3://{bucket}/fruits/")):
                start = time.perf_counter()
                subprocess.run([str(build / "orchard"), *common, "--input", source, "--output",
                                str(Path(tmp) / name)], env=env, check=True)
                times[name] = min(times[name], time.perf_counter() - start)
    return {"local_seconds": times["local"], "s3_seconds": times["s3"], "s3_over_local": times["s3"] / times["local"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--size", type=int, default=5000, help="bytes per object")
    parser.add_argument("--threads", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--build", type=Path, default=REPO / "build")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    cfg = s3fx.load_config()
    started = None
    if cfg is None:
        started = Path(tempfile.mkdtemp()) / "s3.env"
        cfg = s3fx.start_servers(started)
    try:
        client = s3fx.admin_client(cfg, max_pool_connections=max(args.threads) * 2)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": cfg.access_key_id, "AWS_SECRET_ACCESS_KEY": cfg.secret_access_key,
               "AWS_REGION": cfg.region, "AWS_EC2_METADATA_DISABLED": "true"}
        bucket = s3fx.create_bucket(client, "orchard-bench")
        try:
            make_objects(client, bucket, args.objects, args.size, 16)
            results: dict[str, Any] = {"objects": args.objects, "object_bytes": args.size, "fetch": []}
            for threads in args.threads:
                for _ in range(args.repeats):
                    ours = orchard_fetch(args.build, f"s3://{bucket}/small/", threads, cfg.endpoint, env)
                    theirs = boto3_fetch(client, bucket, "small/", threads)
                    row = {"threads": threads, "orchard_objects_per_s": ours["objects_per_second"],
                           "boto3_objects_per_s": theirs["objects_per_second"],
                           "orchard_list_s": ours["list_seconds"], "boto3_list_s": theirs["list_seconds"],
                           "ratio": ours["objects_per_second"] / theirs["objects_per_second"]}
                    results["fetch"].append(row)
                    print(f"threads {threads}: orchard {row['orchard_objects_per_s']:.0f} obj/s, boto3 "
                          f"{row['boto3_objects_per_s']:.0f} obj/s, ratio {row['ratio']:.2f} "
                          f"(listing {row['orchard_list_s']:.2f} s vs {row['boto3_list_s']:.2f} s)", flush=True)
            cli = aws_cli_fetch(bucket, "small/", cfg.endpoint, env)
            results["aws_cli"] = cli
            print("aws cli:", "not installed" if cli is None else f"{cli['objects_per_second']:.0f} obj/s")
            results["end_to_end"] = end_to_end(args.build, cfg, client, bucket, env, args.repeats)
            e2e = results["end_to_end"]
            print(f"end to end, 200 Fruits-360 images, mobilenet_v2: local {e2e['local_seconds']:.2f} s, "
                  f"S3 {e2e['s3_seconds']:.2f} s, S3/local {e2e['s3_over_local']:.2f}")
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")
        finally:
            s3fx.delete_bucket(client, bucket)
    finally:
        if started is not None:
            s3fx.stop_servers(started)


if __name__ == "__main__":
    main()
