"""Progress of a Spark job on the driver's log while the job runs.

Spark's own INFO lines ("Finished task 3.0 in stage 2.0 ... (4/20)") reach the driver's log
only where log4j is at INFO (spark-submit's default, not a Python-started session's, which
is WARN), and the console progress bar only a terminal. ``JobProgress`` logs, on the
``orchard.spark`` logger at INFO, every ``interval`` seconds while the job of the calling
thread runs: tasks done, running and failed, the images that the finished tasks hold
(partitions hold nearly equal numbers of images) and an estimate of the time left.

The job is found through the StatusTracker: the jobs of the calling thread's job group (the
user's, or none) that did not exist when the watch started. A watcher thread only reads the
tracker; it is stopped and joined when the ``with`` block ends, however it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from pyspark import SparkContext

_log = logging.getLogger("orchard.spark")


class JobProgress:
    """``with JobProgress(sc, "out: featurize", tasks=20, images=1000, interval=30):`` around
    the action that starts the job. Not reentrant; one per job."""

    def __init__(self, sc: SparkContext, label: str, *, tasks: int, images: int,
                 interval: float) -> None:
        self._tracker = sc.statusTracker()
        self._group = sc.getLocalProperty("spark.jobGroup.id")
        self._label = label
        self._tasks = tasks
        self._images = images
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._known: set[int] = set()
        self._start = 0.0
        self.lines = 0  # progress lines logged

    def __enter__(self) -> JobProgress:
        if self._interval <= 0:
            return self
        self._known = set(self._tracker.getJobIdsForGroup(self._group))
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="orchard-progress",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _counts(self) -> tuple[int, int, int, int] | None:
        """(total, done, running, failed attempts) over the stages of the new jobs."""
        jobs = [j for j in self._tracker.getJobIdsForGroup(self._group) if j not in self._known]
        total = done = running = failed = 0
        for job in jobs:
            info = self._tracker.getJobInfo(job)
            if info is None:
                continue
            for stage in info.stageIds:
                s = self._tracker.getStageInfo(stage)
                if s is None:
                    continue
                total += s.numTasks
                done += s.numCompletedTasks
                running += s.numActiveTasks
                failed += s.numFailedTasks
        return (total, done, running, failed) if total else None

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                counts = self._counts()
            except Exception:  # noqa: BLE001  the tracker of a stopping context: no progress
                _log.debug("progress: status tracker failed", exc_info=True)
                return
            if counts is None:
                continue
            total, done, running, failed = counts
            elapsed = time.monotonic() - self._start
            images = round(self._images * min(done, self._tasks) / max(1, self._tasks))
            left = (f", about {elapsed * (total - done) / done:.0f} s left" if 0 < done < total
                    else "")
            retried = f", {failed} failed attempts" if failed else ""
            _log.info("%s: %d of %d tasks done, %d running%s; about %d of %d images; %.0f s%s",
                      self._label, done, total, running, retried, images, self._images,
                      elapsed, left)
            self.lines += 1
