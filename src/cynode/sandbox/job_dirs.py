"""Each job's host directories under ``sandbox.mount_root``: created, bounded, handed over, removed.

Owns ``<mount_root>/<job_id>/{workspace,job[,run]}``. The workspace is its own size-limited
``tmpfs`` (``sandbox.resources.max_workspace_mb``) when the node runs as root, so a job that
writes without end gets "no space left on device" at its quota instead of filling the node's
disk (tmpfs pages count against the job's memory limit, which must therefore be larger). Without
root the quota is a podman-managed tmpfs inside the container instead (see the profile).
Directories are handed to the sandbox user; leftovers of a crashed run are removed at start-up.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from cynode.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

_MNT_DETACH = 2
_MIB = 1024 * 1024


@dataclass(frozen=True)
class JobDirs:
    """A job's host directories; ``run`` (mounted at ``/run/cynode``) only for inference jobs.

    ``workspace_quota`` is True when ``workspace`` is a size-limited mount of its own.
    """

    workspace: Path
    job: Path
    run: Path | None = None
    workspace_quota: bool = False

    def workspace_full(self) -> bool:
        """The workspace quota is used up (only known for a quota mount)."""
        if not self.workspace_quota:
            return False
        try:
            stats = os.statvfs(self.workspace)
        except OSError:
            return False
        # A few blocks of slack: a writer stops at ENOSPC with a partial block left.
        return stats.f_bavail * stats.f_frsize < 64 * 1024


def _user_ids(run_as_user: str) -> tuple[int, int]:
    uid, _, gid = run_as_user.partition(":")
    return int(uid), int(gid or uid)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(target: Path, size_bytes: int, uid: int, gid: int) -> None:
    options = f"size={size_bytes},mode=0700,uid={uid},gid={gid}".encode()
    if _libc().mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, options) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), str(target))


def _unmount(target: Path) -> None:
    if _libc().umount2(str(target).encode(), _MNT_DETACH) != 0:
        error = ctypes.get_errno()
        if error not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone already
            log.warning("sandbox_unmount_failed", extra={"path": str(target), "error": os.strerror(error)})


class JobDirectories:
    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings

    @property
    def _quota_mounts(self) -> bool:
        return os.geteuid() == 0 and self.settings.resources.workspace_quota_mb is not None

    def root(self, job_id: str) -> Path:
        return self.settings.mount_root / job_id

    def prepare(self, job_id: str, *, with_run_dir: bool, job_spec_json: str | None) -> JobDirs:
        root = self.root(job_id)
        # A leftover from an earlier attempt must not leak into this one.
        self.remove(job_id)
        root.mkdir(parents=True, mode=0o700)
        dirs = JobDirs(
            root / "workspace", root / "job", root / "run" if with_run_dir else None, workspace_quota=self._quota_mounts
        )
        created = [directory for directory in (dirs.workspace, dirs.job, dirs.run) if directory is not None]
        for directory in created:
            directory.mkdir(mode=0o700)
        if dirs.workspace_quota:
            quota_mb = self.settings.resources.workspace_quota_mb
            assert quota_mb is not None
            _mount_tmpfs(dirs.workspace, quota_mb * _MIB, *_user_ids(self.settings.run_as_user))
        if job_spec_json is not None:
            (dirs.job / "job.json").write_text(job_spec_json, encoding="utf-8")
        for path in (*created, *dirs.job.iterdir()):
            self.hand_to_sandbox_user(path)
        return dirs

    def hand_to_sandbox_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, *_user_ids(self.settings.run_as_user))
        else:
            # Rootless podman maps the sandbox user to a subordinate uid the host user cannot chown to.
            path.chmod(0o777 if path.is_dir() else 0o666)

    def remove(self, job_id: str) -> None:
        """Unmount the job's quota mount and delete its directories (nothing when there are none)."""
        root = self.root(job_id)
        if self._quota_mounts:
            _unmount(root / "workspace")
        shutil.rmtree(root, ignore_errors=True)

    def remove_leftovers(self) -> int:
        """Delete every job's directories (node start-up: no job runs yet); returns how many."""
        root = self.settings.mount_root
        try:
            leftovers = [path.name for path in root.iterdir() if path.is_dir()]
        except OSError:
            return 0  # no mount root (yet): nothing was left; readiness reports an unusable one
        for job_id in leftovers:
            self.remove(job_id)
        if leftovers:
            log.warning("sandbox_job_dirs_removed", extra={"count": len(leftovers), "mount_root": str(root)})
        return len(leftovers)

    def mount_root_problem(self) -> str | None:
        """None when the mount root exists (or can be created) and is writable, else why not."""
        root = self.settings.mount_root
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            marker = root / f".write-check-{uuid.uuid4().hex}"
            marker.write_bytes(b"")
            marker.unlink()
        except OSError as exc:
            return f"sandbox mount root {root} is not writable: {exc.strerror or exc}"
        return None
