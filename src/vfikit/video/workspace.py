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
* A finished folder output holds ``.vfikit-output.json`` (the job record and, under ``files``, the
  names of the files vfikit wrote): ``--force`` replaces only folders that hold it, never a folder the
  tool did not write (a folder of the user's photos), and even then removes only the files it lists;
  anything the user added there (a photo, a subfolder) is moved into the new output. A user's file
  named like a frame (``00000009.png``) would be overwritten, so ``--force`` refuses it up front.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfikit.errors import VfikitError
from vfikit.runtime import write_text_atomic
from vfikit.video.sources import note

JOB_FILE = "job.json"
MANIFEST = ".vfikit-output.json"  # marks a folder written by vfikit: only such folders are replaced
FRAME_NAME = re.compile(r"^\d{8}\.[A-Za-z]+$")  # the numbered frames of a folder output (00000000.png)


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


def check_output_free(output: Path, *, force: bool, resume: bool, folder: bool = False) -> None:
    """Refuse an existing output unless ``force``; even then, see :func:`check_replaceable`."""
    if folder and output.exists() and not output.is_dir():
        raise _file_in_the_way(output)  # before "pass --force": --force would not help
    if output.exists() and not force:
        hint = "it is already complete; " if resume else ""
        raise VfikitError(f"output {output} already exists; {hint}pass --force to replace it")
    check_replaceable(output, folder=folder)


def check_replaceable(output: Path, *, folder: bool = False) -> None:
    """An existing folder is replaced only when vfikit wrote it (it holds :data:`MANIFEST`).

    ``--force`` must never wipe a folder given by mistake, such as a folder of photos. A ``folder``
    output never replaces a file (a file named without a suffix is not an earlier output).
    """
    if folder and output.exists() and not output.is_dir():
        raise _file_in_the_way(output)
    if not output.is_dir() or output.is_symlink():
        return
    if not (output / MANIFEST).is_file():
        raise VfikitError(
            f"{output} is a folder that vfikit did not write (it has no {MANIFEST}); "
            "it will not be replaced, even with --force: choose a new output folder"
        )
    clash = [p.name for p in user_entries(output) if FRAME_NAME.match(p.name)]
    if clash:
        raise VfikitError(
            f"{output / clash[0]} was not written by vfikit (its {MANIFEST} does not list it) but is named like "
            "an output frame, so --force would overwrite it: move it away or choose a new output folder"
        )


def _file_in_the_way(output: Path) -> VfikitError:
    return VfikitError(f"{output} is a file, and a folder of frames cannot replace it, even with --force: "
                       "choose a new output folder")


def written_files(folder: Path) -> set[str]:
    """Names of the files vfikit wrote into the output ``folder``, as its :data:`MANIFEST` lists them.

    Markers written before the list existed (or unreadable ones) count the numbered frames only.
    """
    try:
        files = json.loads((folder / MANIFEST).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        files = None
    if not isinstance(files, list):
        return {p.name for p in folder.iterdir() if FRAME_NAME.match(p.name) and p.is_file()}
    return {str(name) for name in files}


def user_entries(folder: Path) -> list[Path]:
    """What the user added to a vfikit output ``folder``: every entry neither listed nor the marker."""
    ours = written_files(folder) | {MANIFEST}
    return sorted(p for p in folder.iterdir() if p.name not in ours)


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
        files = sorted(p.name for p in self.path.iterdir() if p.name != JOB_FILE)
        record = {**(_read_job(self.path) or {}), **(extra or {}), "files": files}
        kept = user_entries(self.output) if self.output.is_dir() and not self.output.is_symlink() else []
        clash = [p.name for p in kept if (self.path / p.name).exists()]
        if clash:  # (added since the check before the job started; the finished work stays, for --resume)
            raise VfikitError(f"{self.output / clash[0]} was not written by vfikit and a new output file has its "
                              "name: move it away and rerun with --resume")
        write_manifest(self.path, record)
        (self.path / JOB_FILE).unlink()
        replace_into_place(self.path, self.output)
        if kept:
            names = ", ".join(p.name for p in kept[:3]) + (", ..." if len(kept) > 3 else "")
            note(f"kept {len(kept)} file(s) in {self.output} that vfikit did not write: {names}")


def replace_into_place(tmp: Path, output: Path) -> None:
    """Move a finished file or folder to ``output``, replacing what is there only now.

    An output folder's files that vfikit did not write (see :func:`user_entries`) move into the new
    folder; only what vfikit wrote is deleted. A file never replaces a folder holding such files.
    """
    if not output.is_dir() or output.is_symlink():
        os.replace(tmp, output)
        return
    check_replaceable(output)  # (a folder that appeared while the job ran is not ours either)
    kept = user_entries(output)
    if kept and not tmp.is_dir():
        raise VfikitError(f"{output} holds files vfikit did not write (e.g. {kept[0].name}); "
                          "it will not be replaced by a file: choose another output")
    old = output.with_name(f".{output.name}.vfikit-old")
    if old.exists():
        _remove_written(old)
    os.replace(output, old)
    os.replace(tmp, output)
    for entry in kept:
        os.replace(old / entry.name, output / entry.name)
    _remove_written(old)


def _remove_written(folder: Path) -> None:
    """Delete an old output folder that holds only what vfikit wrote. When files of the user's are still
    in it (a replacement interrupted between its renames), nothing is deleted and an error says where."""
    left = user_entries(folder) if (folder / MANIFEST).is_file() else sorted(folder.iterdir())
    if not left:
        shutil.rmtree(folder, ignore_errors=True)
        return
    raise VfikitError(f"{folder} holds files vfikit did not write (e.g. {left[0].name}), left by an interrupted "
                      "replacement: move them where they belong and delete the folder")


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
