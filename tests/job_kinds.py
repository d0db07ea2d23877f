"""Job kinds used by the job-runner tests, registered on import; `python -m tests.job_kinds run ...` is their worker."""

from __future__ import annotations

import os
import sys
import time

from backend import jobs


def slow(atlas, params, ctx):
    """Count up slowly, honouring cancellation unless params say to ignore it."""
    steps = int(params.get("steps", 50))
    for i in range(steps):
        if ctx.cancelled() and not params.get("ignore_cancel"):
            return {"stopped_at": i}
        ctx.progress((i + 1) / steps, f"step {i + 1}/{steps}")
        time.sleep(float(params.get("sleep", 0.1)))
    return {"steps": steps, "pid": os.getpid(), "sid": os.getsid(0)}


def crash(atlas, params, ctx):
    """Fail halfway with a recognisable error."""
    ctx.progress(0.5, "about to fail")
    raise ValueError("flux column has NaNs in row 17")


def hard_exit(atlas, params, ctx):
    """Die without reporting anything, as a segfault or OOM kill would."""
    os._exit(3)


WORKER = "tests.job_kinds"
for _fn in (slow, crash, hard_exit):
    jobs.register_job_kind(jobs.JobKind(f"test-{_fn.__name__.replace('_', '-')}", lambda fn=_fn: fn, worker=WORKER))

if __name__ == "__main__":
    sys.exit(jobs.main())
