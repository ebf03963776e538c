"""Fail fast when Spark's executors cannot run Orchard.

Without this, a session whose executors run a Python without the ``orchard`` package (the
usual case: a driver started from a venv that is not activated, so executors run ``python3``)
fails in the first featurize task, after the output was prepared, with a Java stack trace
that ends in ``No module named 'orchard'``. ``check_executors`` runs one tiny job first: each
task imports what the real tasks import (``orchard.spark._worker``: orchard and pyarrow) and
returns its Python's path and version and orchard's version and build; a failed import, a
version other than the driver's, or a job that cannot even start a Python worker raises
``ExecutorEnvironmentError`` with one paragraph that names the executors' Python and the fix.

The probe is built by a factory, so cloudpickle ships it by value: unpickling it on an
executor needs no orchard (a module-level function would be pickled by reference, and
its unpickling would fail the task with the very error this check is to explain).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pyspark import SparkContext

import orchard

# Tasks of the check job: enough to reach a few executors, never a large job.
MAX_PROBE_TASKS = 64
_DOC = 'docs/spark.md, "What executors need"'

_log = logging.getLogger("orchard.spark")


class ExecutorEnvironmentError(orchard.OrchardError):
    """Spark's executors cannot run Orchard: their Python lacks the ``orchard`` package (or
    pyarrow), has another version of it than the driver, or does not start. When the check
    job itself failed, ``spark_error`` is Spark's exception (with the JVM's trace)."""

    spark_error: BaseException | None = None


def probe_fn() -> Callable[[Iterable[Any]], Iterator[dict[str, Any]]]:
    """mapPartitions function of the check job: one report per task (plain values only)."""

    def probe(_: Iterable[Any]) -> Iterator[dict[str, Any]]:
        import platform
        import socket
        import sys

        report: dict[str, Any] = {"python": sys.executable,
                                  "python_version": platform.python_version(),
                                  "host": socket.gethostname()}
        try:
            import orchard
            import orchard.spark._worker  # noqa: F401  what the tasks import (pyarrow too)

            report["orchard"] = orchard.__version__
            report["orchard_path"] = orchard.__file__
            report["build"] = orchard.build_info()
        except Exception as exc:  # noqa: BLE001  reported to the driver, which raises
            report["error"] = f"{type(exc).__name__}: {exc}"
        yield report

    return probe


def configured_python(sc: SparkContext) -> str:
    """The executors' Python as the driver named it: PYSPARK_PYTHON in the driver's
    environment when the SparkContext started (spark-submit sets it from
    spark.pyspark.python), else python3. PySpark reads nothing else: a
    ``spark.pyspark.python`` given to SparkSession.builder.config is ignored."""
    return getattr(sc, "pythonExec", None) or "python3"


def _how_to_fix(driver_python: str) -> str:
    return (f"Executors run the Python that PYSPARK_PYTHON named in the driver's environment "
            f"when its SparkContext started (spark-submit sets it from --conf "
            f"spark.pyspark.python; SparkSession.builder.config does not), else python3 on "
            f"their PATH. Point it, before the session starts, at a Python with orchard "
            f"{orchard.__version__} and pyarrow: on one machine this driver's own (export "
            f"PYSPARK_PYTHON={driver_python}, or os.environ[\"PYSPARK_PYTHON\"] = "
            f"sys.executable before getOrCreate(); spark-submit --conf "
            f"spark.pyspark.python={driver_python}); on a cluster, install orchard-features "
            f"{orchard.__version__} into that Python on every worker ({_DOC}).")


def problems(reports: Sequence[dict[str, Any]], driver_version: str,
             driver_python: str) -> str | None:
    """The error message for the check job's ``reports``, or None when every executor
    imported the driver's orchard version."""
    failed = [r for r in reports if "error" in r]
    other = [r for r in reports if "error" not in r and r.get("orchard") != driver_version]
    if not failed and not other:
        return None
    where = f"(this driver runs orchard {driver_version} in {driver_python})"
    if failed:
        r = failed[0]
        what = (f"Spark's executors cannot import orchard: executor Python {r['python']} "
                f"(Python {r['python_version']}, on {r['host']}) raised {r['error']} {where}.")
    else:
        r = other[0]
        what = (f"Spark's executors run orchard {r['orchard']} ({r['orchard_path']}, by "
                f"executor Python {r['python']} on {r['host']}), not the driver's "
                f"{driver_version} {where}: the descriptors would not be the driver's.")
    pythons = sorted({x["python"] for x in failed + other})
    if len(pythons) > 1:
        what += f" Executor Pythons with the problem: {', '.join(pythons)}."
    return f"{what} {_how_to_fix(driver_python)}"


def failure_summary(exc: BaseException) -> str:
    """One line from the error of a job that failed: what a Python worker that did not
    start printed, else the worker's Python exception (the last 'SomeError: text' line of
    its traceback), else Spark's reason."""
    text = str(exc)
    worker = re.search(r"Error from python worker:\s*\n\s*(\S.*)", text)
    if worker:
        return worker.group(1).strip()[:500]
    python_lines = [x for x in re.findall(
        r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit)(?:: .*)?)\s*$", text, flags=re.MULTILINE)
        if not x.startswith(("org.apache.", "java.", "scala.", "py4j."))]
    if python_lines:
        return python_lines[-1][:500]
    for pattern in (r"most recent failure: .*?\): (.*)", r"Caused by: (.*)"):
        for m in re.finditer(pattern, text):
            line = m.group(1).strip()
            if line and not re.fullmatch(r"[\w.$]+:?", line):  # not an empty "SomeException:"
                return line[:500]
    return next((x.strip() for x in text.splitlines() if x.strip()), type(exc).__name__)[:500]


def check_executors(sc: SparkContext, tasks: int | None = None) -> list[dict[str, Any]]:
    """Runs the check job (``tasks`` tasks, default: the default parallelism up to
    MAX_PROBE_TASKS) and returns one report per distinct executor Python and host; raises
    ExecutorEnvironmentError if executors cannot import the driver's orchard version."""
    n = max(1, tasks or min(sc.defaultParallelism, MAX_PROBE_TASKS))
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription("orchard: check that the executors can import orchard "
                         f"{orchard.__version__}")
    try:
        reports = sc.parallelize(range(n), n).mapPartitions(probe_fn()).collect()
    except Exception as exc:  # noqa: BLE001  Py4JJavaError, PythonException... by version
        _log.debug("the executors' check job failed", exc_info=True)
        python = configured_python(sc)
        error = ExecutorEnvironmentError(
            f"Spark's executors could not run Orchard's check in Python {python}: "
            f"{failure_summary(exc)} (this driver runs orchard {orchard.__version__} in "
            f"{sys.executable}). {_how_to_fix(sys.executable)}")
        error.spark_error = exc  # the JVM's trace, kept out of the printed chain
        raise error from None
    finally:
        sc.setLocalProperty("spark.job.description", previous)  # type: ignore[arg-type]
    message = problems(reports, orchard.__version__, sys.executable)
    if message is not None:
        raise ExecutorEnvironmentError(message)
    distinct: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reports:
        distinct.setdefault((r["host"], r["python"]), r)
    return list(distinct.values())
