"""orchard.spark on Spark local[2] against orchard.run in the same process, on one folder of
images; deploy/test-wheel runs it in the bullseye chroot with the wheel installed.

    check_spark.py FOLDER WORK_DIR

Both runs use the same options; the files the C++ sinks write (features.csv, features.npy,
pca.json, errors.csv) must be byte-identical, as tests/python/test_spark.py requires of a
Spark run against the CLI (batches of 16 on both sides). Exit status 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

SAME_BYTES = ("features.csv", "features.npy", "pca.json", "errors.csv")


def main() -> int:
    folder, work = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"

    import orchard
    import orchard.spark
    import pyspark
    from pyspark.sql import SparkSession

    options = dict(pca_components=8, batch=16)
    t0 = time.time()
    local = orchard.run(str(folder), str(work / "local"), threads=2, **options)
    t1 = time.time()
    spark = (SparkSession.builder.master("local[2]").appName("orchard-wheel-test")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    t2 = time.time()
    remote = orchard.spark.run(str(folder), str(work / "spark"), spark=spark, num_partitions=3,
                               **options)
    t3 = time.time()
    spark.stop()
    print(f"pyspark {pyspark.__version__}, Java: {os.environ.get('JAVA_HOME', 'on PATH')}")
    print(f"orchard.run: {local['processed']} images, {local['failed']} failed, k={local['k']} "
          f"({t1 - t0:.1f} s); orchard.spark.run local[2]: {remote['processed']} images, "
          f"{remote['failed']} failed, {remote['partitions']} partitions ({t3 - t2:.1f} s, "
          f"session start {t2 - t1:.1f} s)")
    ok = (local["processed"], local["failed"]) == (remote["processed"], remote["failed"])
    for name in SAME_BYTES:
        same = (work / "local" / name).read_bytes() == (work / "spark" / name).read_bytes()
        print(f"  {name}: {'byte-identical' if same else 'DIFFERENT'}")
        ok = ok and same
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
