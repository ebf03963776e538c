"""A real Spark standalone cluster on 127.0.0.1 for tests: one master and N workers, each a
JVM started with the pyspark installation's ``bin/spark-class`` (pip's pyspark ships no
``sbin/start-*.sh``), on ephemeral ports, with small memory, stopped (and its files removed)
at the end.

    with StandaloneCluster(workers=2, cores=1, memory="1g") as cluster:
        spark = SparkSession.builder.master(cluster.master_url)...
        cluster.executor_pids()          # the executor JVMs the workers launched
        cluster.kill_one_executor()

Executors run the Python that the *driver* names (PYSPARK_PYTHON in the driver's
environment), so a driver started from the venv gives them the venv's orchard.
Plain object, no global state; not thread-safe (use it from the test's thread, or only
``executor_pids``/``kill_one_executor`` from a watcher thread).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class StandaloneCluster:
    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "1g",
                 timeout_s: float = 90.0, extra_env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.timeout_s = timeout_s
        self.extra_env = dict(extra_env or {})
        self.dir: Path | None = None
        self.master_url = ""
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []

    # ---- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> StandaloneCluster:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        # No AWS_* from the test's environment: executors must get S3 settings from the
        # driver (spark.executorEnv.*), as on a real cluster.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_DIRS": str(self.dir / "local"),
            "SPARK_LOG_DIR": str(self.dir / "logs"),
            "SPARK_WORKER_DIR": str(self.dir / "work"),
            "SPARK_DAEMON_MEMORY": "256m",
            "SPARK_NO_DAEMONIZE": "1",
        })
        env.update(self.extra_env)
        return env

    def _launch(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        assert self.dir is not None
        log = self.dir / f"{name}.log"
        self._logs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args], stdout=out,
                stderr=subprocess.STDOUT, env=self._env(), cwd=self.dir,
                start_new_session=True)  # its own process group: stop() kills the tree
        self._procs.append(proc)
        return proc

    def _wait_for(self, log: Path, pattern: str, proc: subprocess.Popen[bytes]) -> re.Match[str]:
        deadline = time.monotonic() + self.timeout_s
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            match = regex.search(text)
            if match:
                return match
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{log.name}: no '{pattern}' within {self.timeout_s} s\n{tail}")

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="orchard-spark-cluster-"))
        for sub in ("local", "logs", "work"):
            (self.dir / sub).mkdir()
        try:
            # The master's port is chosen here so that the workers can start at the same time
            # (they retry until the master answers): the JVMs boot in parallel.
            self.master_url = f"spark://127.0.0.1:{_free_port()}"
            port = self.master_url.rsplit(":", 1)[1]
            master = self._launch("master", "org.apache.spark.deploy.master.Master",
                                  "--host", "127.0.0.1", "--port", port, "--webui-port", "0")
            workers = []
            for i in range(self.workers):
                work = self.dir / "work" / f"worker-{i}"
                work.mkdir()
                workers.append(self._launch(
                    f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                    "--port", "0", "--webui-port", "0", "--cores", str(self.cores),
                    "--memory", self.memory, "--work-dir", str(work), self.master_url))
            self._wait_for(self.dir / "master.log", r"Starting Spark master at spark://", master)
            for i, worker in enumerate(workers):
                self._wait_for(self.dir / f"worker-{i}.log", r"Successfully registered with master",
                               worker)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                _kill_tree(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._procs.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ---- executors ------------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._procs[1:] if p.poll() is None]

    def executor_pids(self) -> list[int]:
        """The executor JVMs that the workers launched (children of the worker JVMs)."""
        pids = []
        for worker in self.worker_pids():
            try:
                for child in psutil.Process(worker).children(recursive=True):
                    if EXECUTOR_CLASS in " ".join(child.cmdline()):
                        pids.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        return pids

    def kill_one_executor(self) -> int:
        """SIGKILLs one executor JVM (and so its Python workers' connection); returns its
        pid. The worker reports the loss, the master starts a replacement executor and the
        driver reschedules the lost tasks and the lost cached partitions."""
        pids = self.executor_pids()
        if not pids:
            raise RuntimeError("no executor to kill")
        victim = pids[0]
        _kill_tree(victim, signal.SIGKILL)
        return victim

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in self._logs if p.exists())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kill_tree(pid: int, sig: int) -> None:
    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
