"""A real single-node Slurm cluster for the tests (Slurm 22.05 from Debian + munge).

``SlurmCluster(root)`` writes a private ``slurm.conf`` / ``gres.conf`` and munge key
under ``root``, starts ``munged``, ``slurmctld`` and ``slurmd`` in the foreground as
child processes of the test (so they are ended by PID, never by name), on free TCP
ports, with a private munge socket: it does not touch /etc/slurm, /etc/munge or any
other Slurm on the machine. Client commands (sbatch, squeue, scontrol) find it through
``SLURM_CONF``: use ``cluster.env()`` for subprocesses.

Partitions: ``cpu`` (default) and ``gpu``; the node advertises ``gpus`` fake GPUs of
type ``gpu_type`` (``gres.conf``: ``Name=gpu Type=<type> File=/dev/null``), so a job
submitted with ``--gpus=<type>:1`` is accepted and recorded. Finished jobs stay visible
to ``scontrol show job`` for ``MinJobAge`` (300 s).

Needs root (slurmd runs jobs as the submitting user and must be able to switch users)
and the Debian packages ``slurmctld slurmd slurm-client munge``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel")
TEMPLATE_DIR = Path(__file__).resolve().parent / "slurm"


def missing_requirements() -> list[str]:
    """What this machine lacks to run the test cluster (empty list: ready)."""
    missing = [tool for tool in DAEMONS + CLIENTS if shutil.which(tool) is None
               and not Path("/usr/sbin", tool).exists()]
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        missing.append("root privileges")
    return missing


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidate = Path("/usr/sbin", name)
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError(f"{name} not found; install Debian packages slurmctld slurmd slurm-client munge")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlurmCluster:
    """Start/stop a private single-node Slurm; see the module docstring."""

    def __init__(self, root: str | Path, cpus: int = 8, memory_mb: int = 32000, gpus: int = 1,
                 gpu_type: str = "tgpu", min_job_age: int = 300):
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.gpus = gpus
        self.gpu_type = gpu_type
        self.min_job_age = min_job_age
        self.processes: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"

    # -- configuration -------------------------------------------------------------
    def _write_config(self) -> None:
        for sub in ("etc", "munge", "state", "spool", "log", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # snakemake's slurm-jobstep executor strips SLURM_* (SLURM_CONF too) before its
        # nested `srun`; on a real cluster srun then reads /etc/slurm/slurm.conf. Our
        # private cluster has no file there, so a shim first on PATH restores it.
        shim = self.root / "bin" / "srun"
        shim.write_text(f"#!/bin/sh\nexport SLURM_CONF='{self.conf}'\nexec {_binary('srun')} \"$@\"\n")
        os.chmod(shim, 0o755)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        values = {
            "ctld_port": _free_port(),
            "slurmd_port": _free_port(),
            "root": str(self.root),
            "munge_socket": str(self.munge_socket),
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "gpus": self.gpus,
            "gpu_type": self.gpu_type,
            "min_job_age": self.min_job_age,
        }
        template = (TEMPLATE_DIR / "slurm.conf.template").read_text()
        self.conf.write_text(template.format(**values))
        gres = (TEMPLATE_DIR / "gres.conf.template").read_text()
        (self.root / "etc" / "gres.conf").write_text(gres.format(**values))

    def env(self, base: dict | None = None) -> dict:
        """Environment for client commands (sbatch, squeue, snakemake --executor slurm)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        for var in [v for v in env if v.startswith("SLURM_") and v != "SLURM_CONF"]:
            del env[var]  # never inherit an outer job's context
        return env

    # -- lifecycle -------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                env=self.env(), start_new_session=True)
        log.close()

    def run(self, *argv: str, check: bool = True, timeout: float = 20) -> str:
        result = subprocess.run(list(argv), env=self.env(), capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}\n"
                               f"{self.diagnostics()}")
        return result.stdout

    def start(self, timeout: float = 30) -> "SlurmCluster":
        missing = missing_requirements()
        if missing:
            raise RuntimeError(f"cannot start the test Slurm cluster, missing: {', '.join(missing)}")
        self._write_config()
        self._spawn("munged", [_binary("munged"), "--foreground", "--force",
                               f"--socket={self.munge_socket}",
                               f"--key-file={self.root / 'munge' / 'munge.key'}",
                               f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}"])
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged socket")
        self._spawn("slurmctld", [_binary("slurmctld"), "-D", "-c", "-i", "-f", str(self.conf)])
        self._wait(lambda: self.run("scontrol", "ping", check=False).find("UP") >= 0, timeout,
                   "slurmctld to answer scontrol ping")
        self._spawn("slurmd", [_binary("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait(self._node_ready, timeout, "node localhost to become idle")
        return self

    def _node_ready(self) -> bool:
        state = self.run("sinfo", "-h", "-N", "-o", "%t", check=False).split()
        if any(s.startswith("drain") or s.startswith("drng") for s in state):
            self.run("scontrol", "update", "nodename=localhost", "state=resume", check=False)
        return bool(state) and all(s in ("idle", "mix", "alloc") for s in state)

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} while waiting for {what}\n"
                                       f"{self.diagnostics()}")
            try:
                if predicate():
                    return
            except (subprocess.TimeoutExpired, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"test Slurm cluster: timed out after {timeout} s waiting for {what}\n"
                           f"{self.diagnostics()}")

    def stop(self) -> None:
        """Cancel this cluster's jobs and end the daemons it started (by PID)."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--full", "--partition=cpu,gpu", check=False, timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for name in reversed(DAEMONS):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- records -------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, str]]:
        """``scontrol show job -o`` parsed into dicts (running, pending and recently finished)."""
        out = self.run("scontrol", "show", "job", "-o", check=False)
        records = []
        for line in out.splitlines():
            if not line.strip() or line.startswith("No jobs"):
                continue
            record: dict[str, str] = {}
            key = None
            for token in line.split(" "):
                if "=" in token and not token.startswith("="):
                    key, value = token.split("=", 1)
                    record[key] = value
                elif key is not None:  # value with spaces (Command=..., Comment=...)
                    record[key] += " " + token
            records.append({k: v.strip() for k, v in record.items()})
        return records

    def diagnostics(self, tail: int = 30) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)


# -- the test profile ---------------------------------------------------------------------
GPU_RULES = ("extract_features", "train_gene_chunk", "predict_slide", "slide_model_train",
             "slide_model_predict")


def gpu_rules_of(profile: dict) -> list[str]:
    """Rules the profile sends to a GPU (those with a ``gpu`` resource)."""
    return sorted(rule for rule, res in (profile.get("set-resources") or {}).items()
                  if res and res.get("gpu"))


def write_test_profile(dest: str | Path, repo_root: str | Path) -> Path:
    """profiles/slurm/config.yaml with tests/slurm/test_profile_overrides.yaml applied,
    written to ``dest/config.yaml``; returns ``dest`` (pass it to ``--profile``)."""
    import yaml

    repo_root = Path(repo_root)
    profile = yaml.safe_load((repo_root / "profiles" / "slurm" / "config.yaml").read_text())
    overrides = yaml.safe_load((TEMPLATE_DIR / "test_profile_overrides.yaml").read_text())
    for key in overrides.pop("remove", []):
        profile.pop(key, None)
    gpu_extra = overrides.pop("gpu-rule-overrides", {})
    for rule in gpu_rules_of(profile):
        profile["set-resources"][rule].update(gpu_extra)
    profile.update(overrides)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest
