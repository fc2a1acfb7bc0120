"""Ray driver of `stackrl sweep --executor ray` (started by the stackrl binary; not a CLI).

Reads the sweep's jobs as JSON from stdin, runs each as a Ray task that executes the stackrl
binary on a worker (resources: the cell's --threads CPUs), and prints one JSON line per
event on stdout: {"event": "started"|"finished", "cell": i, ...}. The binary decides the
outcome from the returned exit code and output, exactly as for the local executor.

Storage: the cells' run directories are on a filesystem every node sees at the same path
(the sweep's --out); a task that runs again (Ray retries tasks whose worker died) finds the
run directory and continues it with `stackrl train --resume`, so no metrics row is lost or
duplicated.
"""

import json
import os
import subprocess
import sys

import ray


@ray.remote(max_retries=3, retry_exceptions=False)
def run_cell(binary, fresh_args, resume_args, run_dir, log):
    # Fresh or resumed is decided here, on the worker: a retried task continues the run.
    started = os.path.exists(os.path.join(run_dir, "config.json"))
    args = resume_args if started else fresh_args
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ stackrl %s  (ray worker on %s)\n" % (" ".join(args), os.uname().nodename))
    proc = subprocess.run([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(proc.stdout)
        f.write(proc.stderr)
        f.write("# exit %d\n" % proc.returncode)
    tail = lambda text: [l for l in text.splitlines() if not l.startswith("step ")][-50:]
    return {"returncode": proc.returncode, "stdout": tail(proc.stdout), "stderr": tail(proc.stderr)}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    request = json.load(sys.stdin)
    ray.init(address=request["address"], logging_level="ERROR", log_to_driver=False)
    pending = {}
    for job in request["jobs"]:
        ref = run_cell.options(num_cpus=job["threads"]).remote(
            request["binary"], job["fresh_args"], job["resume_args"], job["run_dir"], job["log"])
        pending[ref] = job["cell"]
        emit({"event": "started", "cell": job["cell"]})
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            cell = pending.pop(ref)
            try:
                result = ray.get(ref)
                emit({"event": "finished", "cell": cell, **result})
            except Exception as e:  # the task failed after its retries
                emit({"event": "finished", "cell": cell, "returncode": None,
                      "stdout": [], "stderr": ["error: ray task failed: %s" % str(e).splitlines()[0]]})


if __name__ == "__main__":
    main()
