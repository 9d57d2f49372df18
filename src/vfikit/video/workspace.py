"""Where a job writes while it runs, how it resumes, and how its result is moved into place.

Every job writes into a hidden folder beside its output, ``.<output name>.vfikit-partial``,
holding ``job.json`` (what the job is: inputs with size and modification time, every setting
that changes the result) and the work done so far: finished video segments (see
:mod:`vfikit.video.encode`) or finished frames of a frame-folder output. Each piece is written
to a temporary name and renamed when complete, so a killed job leaves only whole pieces.

* A fresh run refuses to start when an unfinished job for the same output exists (pass
  ``--resume`` to continue it or ``--force`` to start over), and refuses an existing output
  unless ``--force``.
* ``--resume`` continues only a job whose ``job.json`` matches the new request exactly;
  otherwise it says what differs.
* When the work is complete the result is moved into place with ``os.replace`` (atomic on one
  file system); an existing output replaced under ``--force`` disappears only at that moment.
* A finished folder output holds ``.vfikit-output.json`` (the job record): ``--force`` replaces only
  folders that hold it, never a folder the tool did not write (a folder of the user's photos).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfikit.errors import VfikitError
from vfikit.runtime import write_text_atomic

JOB_FILE = "job.json"
MANIFEST = ".vfikit-output.json"  # marks a folder written by vfikit: only such folders are replaced


def partial_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.vfikit-partial")


def temp_path(output: Path) -> Path:
    """A temporary name in the output's folder that keeps the suffix (formats are chosen by it)."""
    return output.with_name(f".{output.stem}.vfikit-tmp{output.suffix}")


def file_identity(path: Path) -> dict[str, Any]:
    """Path, size and modification time: enough to notice that an input changed."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_writable_dir(folder: Path) -> None:
    """The folder that will receive an output must exist (or be creatable) and be writable."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise VfikitError(f"cannot write into {folder}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise VfikitError(f"no permission to write into {probe}")


def check_output_free(output: Path, *, force: bool, resume: bool) -> None:
    """Refuse an existing output unless ``force``; even then, see :func:`check_replaceable`."""
    if output.exists() and not force:
        hint = "it is already complete; " if resume else ""
        raise VfikitError(f"output {output} already exists; {hint}pass --force to replace it")
    check_replaceable(output)


def check_replaceable(output: Path) -> None:
    """An existing folder is replaced only when vfikit wrote it (it holds :data:`MANIFEST`).

    ``--force`` must never wipe a folder given by mistake, such as a folder of photos.
    """
    if output.is_dir() and not output.is_symlink() and not (output / MANIFEST).is_file():
        raise VfikitError(
            f"{output} is a folder that vfikit did not write (it has no {MANIFEST}); "
            "it will not be replaced, even with --force: choose a new output folder"
        )


def write_manifest(folder: Path, record: dict[str, Any]) -> None:
    """Mark ``folder`` as a vfikit output: ``MANIFEST`` holds the job record (temporary name, then rename)."""
    write_text_atomic(folder / MANIFEST, json.dumps(record, indent=1, sort_keys=True, default=str))


@dataclass
class Workspace:
    """The partial folder of one job (see module docstring)."""

    output: Path
    path: Path
    resumed: bool

    @classmethod
    def open(cls, output: Path, job: dict[str, Any], *, resume: bool, force: bool) -> Workspace:
        """Create the partial folder, or reopen it when resuming a matching job."""
        path = partial_dir(output)
        if path.exists():
            if resume:
                previous = _read_job(path)
                if previous is not None:
                    diff = _describe_difference(previous, job)
                    if diff:
                        raise VfikitError(
                            f"the unfinished job in {path} was started with different settings ({diff}); "
                            "run the same command to resume it, or pass --force to start over"
                        )
                    return cls(output, path, resumed=True)
                # a job killed before it wrote job.json has nothing worth keeping
            elif not force:
                raise VfikitError(
                    f"an unfinished job for {output.name} exists ({path}); "
                    "pass --resume to continue it or --force to start over"
                )
            shutil.rmtree(path)
        path.mkdir(parents=True)
        write_text_atomic(path / JOB_FILE, json.dumps(job, indent=1, sort_keys=True, default=str))
        return cls(output, path, resumed=False)

    def discard(self) -> None:
        """Remove the partial folder (after success, or when nothing worth keeping was done)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def finish_folder(self, extra: dict[str, Any] | None = None) -> None:
        """Make the partial folder the output folder (frame-folder outputs), marked by its manifest.

        The manifest holds the job record plus ``extra`` (e.g. a note that the input was truncated).
        """
        record = {**(_read_job(self.path) or {}), **(extra or {})}
        write_manifest(self.path, record)
        (self.path / JOB_FILE).unlink()
        replace_into_place(self.path, self.output)


def replace_into_place(tmp: Path, output: Path) -> None:
    """Move a finished file or folder to ``output``, replacing what is there only now."""
    if output.is_dir() and not output.is_symlink():
        old = output.with_name(f".{output.name}.vfikit-old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, output)


def _read_job(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    new = json.loads(json.dumps(new, sort_keys=True, default=str))
    diffs = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            diffs.append(f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}")
    return "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
