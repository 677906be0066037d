"""Smoke trainer: a stand-in for the platform's train.py that exercises the trainer contract
(command line, exit codes, checkpoint/resume, SIGTERM, backend reporting) without a framework.

It takes train.py's flags, "trains" for --epochs with made-up metrics, writes
$CHECKPOINT_DIR/last.pt every epoch and resumes from the newest checkpoint it can read.
With SMOKE_REQUIRE_GPU=1 it first proves the node's GPU works, so one run validates a new cluster.

Behaviour knobs, in --advanced_config: {"smoke": {"epoch_seconds": 0.2, "fail_at_epoch": 3, "exit_code": 1}}.
Standard library only: it must run wherever `python` does.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Exit codes the platform's podFailurePolicy reads (charts-ts/trainer-contract.ts):
# 2 is argparse's usage error, 3 a configuration error; neither is retried.
CONFIGURATION_ERROR = 3
# 128 + SIGTERM: what a process ended by the signal reports, so a handled stop exits the same way.
TERMINATED = 143
BACKEND_TIMEOUT_SECONDS = 2.0


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def parse_args(argv):
    # No abbreviations: --epoch must be an unknown flag, not a silent --epochs.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    # Required: what trainerArgs() always passes. Optional: what it passes only when the request has it.
    parser.add_argument("--framework", required=True)
    parser.add_argument("--task_type", required=True)
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--dataset_path", required=True)
    parser.add_argument("--dataset_format", required=True)
    parser.add_argument("--num_classes", type=positive_int)
    parser.add_argument("--epochs", type=positive_int, required=True)
    parser.add_argument("--batch_size", type=positive_int, required=True)
    parser.add_argument("--learning_rate", type=positive_float, required=True)
    parser.add_argument("--optimizer", required=True)
    parser.add_argument("--image_size", type=positive_int)
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--job_id", type=positive_int, required=True)
    parser.add_argument("--project_id", type=positive_int)
    parser.add_argument("--advanced_config", default="{}", help="a JSON object")
    return parser.parse_args(argv)


class ConfigurationError(Exception):
    """A run that can never succeed as configured: exit 3, so the Job is not retried."""


class Terminated(Exception):
    """SIGTERM: the pod is being stopped or preempted."""


def on_sigterm(_signum, _frame):
    raise Terminated()


def smoke_settings(advanced_config_json):
    try:
        advanced_config = json.loads(advanced_config_json)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"--advanced_config is not valid JSON: {error}") from None
    if not isinstance(advanced_config, dict):
        raise ConfigurationError("--advanced_config must be a JSON object")
    smoke = advanced_config.get("smoke", {})
    if not isinstance(smoke, dict):
        raise ConfigurationError("advanced_config.smoke must be a JSON object")
    epoch_seconds = smoke.get("epoch_seconds", 0.2)
    fail_at_epoch = smoke.get("fail_at_epoch")
    exit_code = smoke.get("exit_code", 1)
    # bool is an int in Python: refuse true/false where a number is meant.
    if isinstance(epoch_seconds, bool) or not isinstance(epoch_seconds, (int, float)) or epoch_seconds < 0:
        raise ConfigurationError("advanced_config.smoke.epoch_seconds must be a number >= 0")
    if fail_at_epoch is not None and (type(fail_at_epoch) is not int or fail_at_epoch < 1):
        raise ConfigurationError("advanced_config.smoke.fail_at_epoch must be an integer >= 1")
    if type(exit_code) is not int or not 1 <= exit_code <= 255:
        raise ConfigurationError("advanced_config.smoke.exit_code must be an integer from 1 to 255")
    return {"epoch_seconds": float(epoch_seconds), "fail_at_epoch": fail_at_epoch, "exit_code": exit_code}


class Backend:
    """The plan's TrainingLogger endpoints. Reporting is best effort: a backend outage never stops training."""

    def __init__(self, base_url, job_id):
        self.job_url = f"{base_url.rstrip('/')}/api/v1/internal/training/jobs/{job_id}" if base_url else None

    def status(self, status):
        self._post("status", {"status": status})

    def metrics(self, epoch, metrics):
        self._post("metrics", {"epoch": epoch, "metrics": metrics})

    def log(self, message, level="INFO"):
        self._post("logs", {"message": message, "level": level})

    def _post(self, endpoint, payload):
        if self.job_url is None:
            return
        url = f"{self.job_url}/{endpoint}"
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=BACKEND_TIMEOUT_SECONDS) as response:
                response.read()
        except (OSError, ValueError) as error:  # URLError, HTTPError and timeouts are OSErrors
            print(f"backend: POST {url} failed: {error}", file=sys.stderr, flush=True)


def out(line):
    # One write for the line and its newline (print() makes two): a SIGTERM handled in between
    # would glue the next message onto an unfinished line.
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def say(backend, message, level="INFO"):
    out(message)
    backend.log(message, level)


def visible_gpus():
    """GPU names from nvidia-smi, or from the driver's /proc entries when the image has no nvidia-smi."""
    if shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True)
            gpus = [line.strip() for line in listing.stdout.splitlines() if line.strip()]
            if gpus:
                return gpus
        except (OSError, subprocess.SubprocessError) as error:
            print(f"gpu: nvidia-smi -L failed: {error}", file=sys.stderr, flush=True)
    gpus = []
    for information in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        fields = dict(line.split(":", 1) for line in Path(information).read_text().splitlines() if ":" in line)
        gpus.append(fields.get("Model", information).strip())
    return gpus


def gpu_workload():
    """A matrix multiply on the GPU when torch can reach CUDA; without torch, a pure-Python one."""
    try:
        import torch
    except ImportError:
        size = 64
        matrix = [[float(i == j) * 2 for j in range(size)] for i in range(size)]
        product = [[sum(a * b for a, b in zip(row, column)) for column in zip(*matrix)] for row in matrix]
        if product[size - 1][size - 1] != 4.0:
            raise RuntimeError("pure-Python matrix multiply gave a wrong result")
        return f"torch is not installed: checked a {size}x{size} matrix multiply on the CPU only"
    if not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} cannot use CUDA (driver and CUDA runtime mismatch?)")
    matrix = torch.eye(1024, device="cuda") * 2
    trace = torch.trace(matrix @ matrix).item()
    torch.cuda.synchronize()
    if trace != 4.0 * 1024:
        raise RuntimeError(f"CUDA matrix multiply gave a wrong result (trace {trace})")
    return f"CUDA matrix multiply ok on {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"


def check_gpu(backend):
    gpus = visible_gpus()
    if not gpus:
        return (
            "no GPU visible: nvidia-smi -L and /proc/driver/nvidia/gpus list none. "
            "Does the pod request nvidia.com/gpu, and is the NVIDIA device plugin running on this node?"
        )
    for gpu in gpus:
        say(backend, f"gpu: {gpu}")
    try:
        say(backend, f"gpu: {gpu_workload()}")
    except Exception as error:  # whatever CUDA raises, the answer is the same: this node cannot train
        return f"GPU workload failed: {type(error).__name__}: {error}"
    return None


def read_checkpoint(path):
    try:
        checkpoint = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read checkpoint {path}: {error}") from None
    if not isinstance(checkpoint, dict) or type(checkpoint.get("epoch")) is not int:
        raise ConfigurationError(f"checkpoint {path} has no integer epoch")
    if not isinstance(checkpoint.setdefault("metrics", {}), dict):
        raise ConfigurationError(f"checkpoint {path} has metrics that are not an object")
    return checkpoint


def resume_checkpoint(checkpoint_dir, backend):
    """The newest of $RESUME_FROM (when a local file) and this run's own last.pt; None to start fresh."""
    candidates = []
    resume_from = os.environ.get("RESUME_FROM")
    if resume_from and "://" in resume_from:
        say(backend, f"RESUME_FROM {resume_from} is not a local file; the smoke trainer does not download checkpoints")
    elif resume_from:
        if not Path(resume_from).is_file():
            raise ConfigurationError(f"RESUME_FROM {resume_from} is not a file")
        candidates.append((read_checkpoint(resume_from), resume_from))
    own = checkpoint_dir / "last.pt"
    if own.is_file():
        candidates.append((read_checkpoint(own), str(own)))
    return max(candidates, key=lambda candidate: candidate[0]["epoch"], default=None)


def write_checkpoint(checkpoint_dir, args, progress):
    epoch, metrics = progress
    checkpoint = {"epoch": epoch, "job_id": args.job_id, "model_name": args.model_name, "metrics": metrics}
    partial = checkpoint_dir / "last.pt.partial"
    partial.write_text(json.dumps(checkpoint))
    # A rename is atomic: a SIGKILL mid-write never leaves a truncated last.pt to resume from.
    os.replace(partial, checkpoint_dir / "last.pt")


def epoch_metrics(epoch):
    decay = 0.8**epoch
    return {"loss": round(2.0 * decay, 4), "accuracy": round(1.0 - 0.9 * decay, 4)}


def format_metrics(metrics):
    return " ".join(f"{name}={value:.3f}" for name, value in metrics.items())


def train(args, smoke, checkpoint_dir, backend):
    resumed = resume_checkpoint(checkpoint_dir, backend)
    # (last finished epoch, its metrics), replaced in one assignment so SIGTERM never sees half an update.
    progress = (resumed[0]["epoch"], resumed[0]["metrics"]) if resumed else (0, {})
    if resumed:
        say(backend, f"resuming from {resumed[1]} (epoch {progress[0]}): starting at epoch {progress[0] + 1}")
    try:
        for epoch in range(progress[0] + 1, args.epochs + 1):
            if epoch == smoke["fail_at_epoch"]:
                message = f"failing at epoch {epoch} as advanced_config.smoke asks (exit code {smoke['exit_code']})"
                print(message, file=sys.stderr, flush=True)
                backend.log(message, "ERROR")
                backend.status("failed")
                return smoke["exit_code"]
            time.sleep(smoke["epoch_seconds"])
            progress = (epoch, epoch_metrics(epoch))
            write_checkpoint(checkpoint_dir, args, progress)
            out(f"epoch {epoch}/{args.epochs} {format_metrics(progress[1])}")
            backend.metrics(*progress)
    except Terminated:
        write_checkpoint(checkpoint_dir, args, progress)
        say(backend, f"SIGTERM: checkpoint at epoch {progress[0]} written to {checkpoint_dir / 'last.pt'}; exiting", "WARNING")
        return TERMINATED
    say(backend, f"training completed: {args.epochs} epochs, final {format_metrics(progress[1])}")
    backend.status("completed")
    return 0


def main(argv):
    signal.signal(signal.SIGTERM, on_sigterm)
    args = parse_args(argv)
    backend = Backend(os.environ.get("BACKEND_API_URL"), args.job_id)
    checkpoint_dir = Path(os.environ.get("CHECKPOINT_DIR") or Path(args.output_dir) / "checkpoints")
    try:
        smoke = smoke_settings(args.advanced_config)
        backend.status("running")
        say(backend, f"smoke trainer: job {args.job_id}, {args.framework}/{args.task_type}/{args.model_name}, {args.epochs} epochs")
        if os.environ.get("SMOKE_REQUIRE_GPU") == "1":
            problem = check_gpu(backend)
            if problem:
                print(problem, file=sys.stderr, flush=True)
                backend.log(problem, "ERROR")
                backend.status("failed")
                return 1
        try:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(f"cannot create the checkpoint folder {checkpoint_dir}: {error}") from None
        return train(args, smoke, checkpoint_dir, backend)
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr, flush=True)
        backend.log(f"configuration error: {error}", "ERROR")
        backend.status("failed")
        return CONFIGURATION_ERROR
    except Terminated:
        # Stopped before the first epoch began: there is no progress to checkpoint.
        out("SIGTERM before training started; exiting")
        return TERMINATED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
