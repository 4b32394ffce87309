"""Install, verify and locate the course datasets.

The datasets are described by ``datasets/manifest.json``: for every dataset its title, license,
attribution and the list of its files, each with its size, its sha256 and where it comes from
(a direct ``url``, or a ``member`` of one of the dataset's ``archives``). The data itself is never
committed; it is installed into the datasets folder (``COURSE_DATASETS_DIR``, default
``<course>/datasets``) by ``make datasets``, i.e. ``python -m includes.data.datasets install``.

Where the bytes come from (pooch does the transfer and checks the sha256 of what arrives):

- a mirror, given by ``--mirror`` / ``mirror=`` or the ``COURSE_DATASETS_MIRROR`` variable: a
  local folder or an ``http(s)://`` base URL laid out as ``<mirror>/<dataset>/<path>``;
- otherwise the canonical URLs of the manifest (each archive is downloaded once).

Every file is checked against the manifest (size and sha256). Under the lock ``.install.lock``,
a dataset is built in a staging folder ``<datasets_dir>/.staging-<name>-<pid>`` and renamed into
place only once every file has been verified (:func:`includes.fsutil.build_into_place`), so an
interrupted install never leaves a partial ``<datasets_dir>/<name>``.
A stamp file ``<name>/.installed.json`` lets :func:`is_installed` / :func:`require` answer
without reading the data.

Manifest shape: the file holds ``{"manifest_version": 1, "datasets": [entry, ...]}``;
:func:`load_manifest` returns the entries as a dict keyed by dataset name, in file order. Every
function taking ``manifest=`` expects such a dict (default: the course manifest).

Command line::

    python -m includes.data.datasets install [NAMES...] [--mirror DIR_OR_URL] [--dir DIR]
    python -m includes.data.datasets verify [NAMES...] [--dir DIR]
    python -m includes.data.datasets list [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from includes.fsutil import build_into_place, exclusive_lock, remove_leftovers
from includes.paths import COURSE_ROOT, CourseSetupError, datasets_root, not_installed

MANIFEST_PATH = COURSE_ROOT / "datasets" / "manifest.json"
MANIFEST_VERSION = 1
MIRROR_ENV = "COURSE_DATASETS_MIRROR"
STAMP_NAME = ".installed.json"
LOCK_NAME = ".install.lock"
DOWNLOADS_DIR = ".downloads"  # inside a staging folder: the archives, removed before the swap
HTTP_TIMEOUT = 60.0  # seconds without any progress before a download is abandoned
USER_AGENT = "scalable-ml-course-datasets/1"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Manifest = dict[str, dict[str, Any]]
Logger = Callable[[str], Any]


class DatasetError(CourseSetupError):
    """A dataset is missing, unknown or corrupted, or could not be downloaded; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def load_manifest(path: os.PathLike | str = MANIFEST_PATH) -> Manifest:
    """Read and validate the manifest; return its dataset entries keyed by name, in file order."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"could not read the dataset manifest {path}: {exc}") from exc
    entries = raw.get("datasets") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f"the dataset manifest {path} has no 'datasets' list")
    manifest: Manifest = {}
    for entry in entries:
        _validate_entry(entry, path)
        if entry["name"] in manifest:
            raise DatasetError(f"the dataset manifest {path} declares {entry['name']!r} twice")
        manifest[entry["name"]] = entry
    return manifest


def save_manifest(manifest: Mapping[str, Mapping[str, Any]], path: os.PathLike | str) -> None:
    """Write ``manifest`` (as returned by :func:`load_manifest`) in the manifest file format."""
    document = {"manifest_version": MANIFEST_VERSION, "datasets": list(manifest.values())}
    Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _validate_entry(entry: Any, origin: os.PathLike | str) -> None:
    """Reject manifest entries the installer could not handle safely."""

    def bad(why: str) -> DatasetError:
        name = entry.get("name") if isinstance(entry, dict) else entry
        return DatasetError(f"invalid dataset manifest {origin}: dataset {name!r}: {why}")

    if not isinstance(entry, dict) or not _NAME_RE.fullmatch(str(entry.get("name", ""))):
        raise bad("missing or invalid 'name'")
    archives = {archive.get("name") for archive in entry.get("archives") or []}
    files = entry.get("files")
    if not isinstance(files, list) or not files:
        raise bad("no 'files'")
    seen: set[str] = set()
    for file in files:
        path = file.get("path", "")
        if not _is_safe_relative(path) or path == STAMP_NAME or path in seen:
            raise bad(f"invalid or duplicate file path {path!r}")
        seen.add(path)
        if not isinstance(file.get("size"), int) or not _SHA256_RE.fullmatch(str(file.get("sha256"))):
            raise bad(f"file {path!r} needs an integer 'size' and a hex 'sha256'")
        has_url, has_member = "url" in file, "archive" in file and "member" in file
        if has_url == has_member:
            raise bad(f"file {path!r} needs either 'url' or 'archive' + 'member'")
        if has_member and file["archive"] not in archives:
            raise bad(f"file {path!r} refers to undeclared archive {file['archive']!r}")


def _is_safe_relative(path: str) -> bool:
    """True for a non-empty relative POSIX path that stays inside its folder."""
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def _entry_fingerprint(entry: Mapping[str, Any]) -> str:
    """A checksum of the dataset's file list (paths, sizes, sha256s): what the stamp records."""
    listing = [[file["path"], file["size"], file["sha256"]] for file in entry["files"]]
    return hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode()).hexdigest()


def _dataset_bytes(entry: Mapping[str, Any]) -> int:
    return sum(file["size"] for file in entry["files"])


def _summary(entry: Mapping[str, Any]) -> str:
    """``"5 files, 0.2 MB"``."""
    count = len(entry["files"])
    return f"{count} file{'' if count == 1 else 's'}, {_dataset_bytes(entry) / 1e6:.1f} MB"


# --------------------------------------------------------------------------------------------
# Argument helpers
# --------------------------------------------------------------------------------------------


def _resolve_manifest(manifest: Manifest | None) -> Manifest:
    return load_manifest() if manifest is None else manifest


def _resolve_dir(datasets_dir: os.PathLike | str | None) -> Path:
    if datasets_dir is not None:
        return Path(datasets_dir).expanduser().resolve()
    return datasets_root()


def _select(names: Iterable[str] | str | None, manifest: Manifest) -> list[str]:
    """The requested dataset names (all when None), deduplicated; unknown names raise."""
    if names is None:
        return list(manifest)
    requested = [names] if isinstance(names, str) else list(names)
    for name in requested:
        if name not in manifest:
            raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(manifest)}")
    return list(dict.fromkeys(requested))


def _not_installed_message(name: str, root: Path) -> str:
    return str(not_installed(name, root))


# --------------------------------------------------------------------------------------------
# Checks and error messages
# --------------------------------------------------------------------------------------------


def _mismatch(name: str, what: str, expected: Mapping[str, Any], got: str, fix: str) -> DatasetError:
    """The error for a file or archive whose bytes are not the ones the manifest expects."""
    return DatasetError(
        f"Dataset '{name}': {what} does not match the manifest: expected sha256 "
        f"{expected.get('sha256') or '(any)'} ({expected.get('size')} bytes), got {got}. {fix}"
    )


def _check_file(name: str, file: Mapping[str, Any], path: Path, what: str, fix: str) -> None:
    """Raise unless ``path`` exists with the size and sha256 the manifest gives for ``file``."""
    if not path.is_file():
        raise DatasetError(f"Dataset '{name}': {what} is missing. {fix}")
    with open(path, "rb") as handle:
        sha = hashlib.file_digest(handle, "sha256").hexdigest()
    size = path.stat().st_size
    if (size, sha) != (file["size"], file["sha256"]):
        raise _mismatch(name, what, file, f"sha256 {sha} ({size} bytes)", fix)


def _source_fix(name: str) -> str:
    return (
        f"Nothing was installed for '{name}'. Delete any copy of that file you provided and re-run "
        f"`make datasets`; if it comes from a mirror ({MIRROR_ENV} or --mirror), the mirror copy is "
        f"corrupted: repair the mirror, or unset {MIRROR_ENV} to download from the original source."
    )


def _installed_fix(name: str, target: Path) -> str:
    return (
        f"Delete {target} and re-run `make datasets` (or `python -m includes.data.datasets install {name}`); "
        f"if it comes from a mirror ({MIRROR_ENV}), the mirror copy is corrupted."
    )


# --------------------------------------------------------------------------------------------
# Sources: where the bytes of a file come from (pooch does the transfer)
# --------------------------------------------------------------------------------------------


def _retrieve(name: str, spec: Mapping[str, Any], url: str, dest: Path,
              downloader: Callable[..., Any] | None = None, members: list[str] | None = None) -> None:
    """Fetch ``url`` into ``dest`` with pooch, which checks the sha256 (when ``spec`` has one).

    ``spec`` is the manifest's file or archive; ``members`` are unzipped next to the archive
    (into ``<dest>.unzip``). Any failure becomes a :class:`DatasetError` that says what to do.
    """
    import pooch  # imported here: the set-up cell of every notebook imports this module
    import requests

    item = spec.get("path") or spec["name"]
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # not pooch's "Downloading data from ..." lines
    try:
        pooch.retrieve(
            url, known_hash=spec.get("sha256") and f"sha256:{spec['sha256']}", fname=dest.name, path=dest.parent,
            downloader=downloader or pooch.HTTPDownloader(
                timeout=HTTP_TIMEOUT, progressbar=False, headers={"User-Agent": USER_AGENT}),
            processor=pooch.Unzip(members=members) if members else None,
        )
    except ValueError as exc:  # pooch: the sha256 of what arrived is not the known one
        got = re.search(r"but got ([0-9a-f]+)", str(exc))
        kind = "file" if "path" in spec else "archive"
        raise _mismatch(name, f"{kind} {item} (from {url})", spec, f"sha256 {got[1] if got else exc}",
                        _source_fix(name)) from exc
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"Dataset '{name}': archive {item} from {url} is not a readable zip file ({exc}). "
                           f"{_source_fix(name)}") from exc
    except requests.RequestException as exc:
        response = getattr(exc, "response", None)
        reason = f"HTTP {response.status_code} {response.reason}" if response is not None else str(exc)
        raise DatasetError(
            f"could not download {name}/{item} from {url}: {reason}. Check your connection, or set "
            f"{MIRROR_ENV} to a folder holding the datasets."
        ) from exc
    finally:
        logger.setLevel(level)


def _copy_file(url: str, output_file: str, _pooch: Any) -> None:
    """A pooch downloader for a local mirror, where ``url`` is a path."""
    shutil.copyfile(url, output_file)


class _Mirror:
    """A mirror laid out as ``<base>/<dataset>/<path>``: a local folder or an ``http(s)://`` base URL."""

    def __init__(self, base: str) -> None:
        if base.startswith("file://"):
            base = urllib.request.url2pathname(urllib.parse.urlparse(base).path)
        self.http = base.startswith(("http://", "https://"))
        if not self.http and not Path(base).expanduser().is_dir():
            raise DatasetError(
                f"the dataset mirror {base!r} is neither a folder nor an http(s):// URL "
                f"(set by --mirror or {MIRROR_ENV})."
            )
        self.base = base.rstrip("/") if self.http else str(Path(base).expanduser().resolve())
        self.label = f"mirror {self.base}"

    def fetch(self, name: str, entry: Mapping[str, Any], file: Mapping[str, Any], staging: Path) -> str:
        """Put ``file`` into ``staging``; return where it came from."""
        if self.http:
            url = f"{self.base}/{urllib.parse.quote(name)}/{urllib.parse.quote(file['path'])}"
            _retrieve(name, file, url, staging / file["path"])
            return url
        source = Path(self.base, name, file["path"])
        if not source.is_file():
            raise DatasetError(
                f"the dataset mirror {self.base} has no file {name}/{file['path']}. Check {MIRROR_ENV} "
                f"(or --mirror), or unset it to download from the original source."
            )
        _retrieve(name, file, str(source), staging / file["path"], downloader=_copy_file)
        return str(source)


class _Origin:
    """The manifest's own URLs; each archive is downloaded and unzipped once, into ``<staging>/.downloads``."""

    label = "the original sources"

    def fetch(self, name: str, entry: Mapping[str, Any], file: Mapping[str, Any], staging: Path) -> str:
        """Put ``file`` into ``staging``; return where it came from."""
        dest = staging / file["path"]
        archives = entry.get("archives") or []
        index = next((i for i, a in enumerate(archives) if file.get("url") == a["url"]
                      or file.get("archive") == a["name"]), None)
        if index is None:
            _retrieve(name, file, file["url"], dest)
            return file["url"]
        archive = archives[index]
        zip_path = staging / DOWNLOADS_DIR / f"archive-{index}.zip"
        if not zip_path.exists():
            members = [f["member"] for f in entry["files"] if f.get("archive") == archive["name"]]
            _retrieve(name, archive, archive["url"], zip_path, members=members)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if "url" in file:  # the archive itself is also a file of the dataset
            shutil.copyfile(zip_path, dest)
            return archive["url"]
        member = Path(f"{zip_path}.unzip", file["member"])
        if not member.is_file():
            raise DatasetError(
                f"Dataset '{name}': archive {archive['name']} ({archive['url']}) has no member {file['member']}. "
                f"{_source_fix(name)}"
            )
        os.replace(member, dest)
        return f"member {file['member']} of {archive['url']}"


# --------------------------------------------------------------------------------------------
# Installed copies: verification and stamp
# --------------------------------------------------------------------------------------------


def _verify_dataset(name: str, entry: Mapping[str, Any], target: Path) -> None:
    """Check every file of an installed dataset (size and sha256); raise on the first problem."""
    if not target.is_dir():
        raise DatasetError(_not_installed_message(name, target.parent))
    for file in entry["files"]:
        path = target / file["path"]
        _check_file(name, file, path, f"file {path}", _installed_fix(name, target))


def _read_stamp(target: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads((target / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _stamp_matches(name: str, entry: Mapping[str, Any], target: Path) -> bool:
    stamp = _read_stamp(target)
    return bool(stamp) and stamp.get("name") == name and stamp.get("fingerprint") == _entry_fingerprint(entry)


def _write_stamp(name: str, entry: Mapping[str, Any], target: Path) -> None:
    """Record what was verified, atomically (write a temporary file, then rename)."""
    stamp = {
        "name": name,
        "fingerprint": _entry_fingerprint(entry),
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": {file["path"]: {"size": file["size"], "sha256": file["sha256"]} for file in entry["files"]},
    }
    tmp = target / f"{STAMP_NAME}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target / STAMP_NAME)


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def _build(name: str, entry: Mapping[str, Any], staging: Path, source: _Mirror | _Origin) -> None:
    """Fetch every file into ``staging`` and check its size and sha256; then write the stamp."""
    for file in entry["files"]:
        where = source.fetch(name, entry, file, staging)
        _check_file(name, file, staging / file["path"], f"file {file['path']} (from {where})", _source_fix(name))
    shutil.rmtree(staging / DOWNLOADS_DIR, ignore_errors=True)
    _write_stamp(name, entry, staging)


def _is_verified_copy(name: str, entry: Mapping[str, Any], target: Path) -> bool:
    """True when ``target`` holds every file of the dataset with the right size and sha256."""
    try:
        _verify_dataset(name, entry, target)
    except DatasetError:
        return False
    return True


def _install_one(name: str, entry: Mapping[str, Any], root: Path, mirror: str, log: Logger) -> bool:
    """Install one dataset unless a verified copy is present; return True if it was (re)installed."""
    target = root / name
    present = target.exists()
    if present and _is_verified_copy(name, entry, target):
        if not _stamp_matches(name, entry, target):
            _write_stamp(name, entry, target)
        log(f"{name}: already installed ({_summary(entry)}) in {target}")
        return False
    source = _Mirror(mirror) if mirror else _Origin()
    build_into_place(target, lambda staging: _build(name, entry, staging, source))
    replaced = " (replaced a copy that failed verification)" if present else ""
    log(f"{name}: installed {_summary(entry)} from {source.label} into {target}{replaced}")
    return True


def install(
    names: Iterable[str] | str | None = None,
    datasets_dir: os.PathLike | str | None = None,
    mirror: str | None = None,
    manifest: Manifest | None = None,
    log: Logger = print,
) -> list[str]:
    """Install the named datasets (default: all) and return the names actually (re)installed.

    ``mirror`` is a folder or ``http(s)://`` base URL laid out as ``<mirror>/<dataset>/<path>``;
    None means ``$COURSE_DATASETS_MIRROR``, and an empty value (or no variable) means the
    manifest's canonical URLs. Datasets already installed and verified are skipped. Raises
    :class:`DatasetError` on any download or checksum problem; nothing partial is left behind.
    """
    manifest = _resolve_manifest(manifest)
    selected = _select(names, manifest)
    root = _resolve_dir(datasets_dir)
    mirror = (os.environ.get(MIRROR_ENV, "") if mirror is None else mirror).strip()
    root.mkdir(parents=True, exist_ok=True)
    waiting = f"another dataset install is running in {root}; waiting for it to finish ..."
    with exclusive_lock(root / LOCK_NAME, on_wait=lambda: log(waiting)):
        remove_leftovers(root)  # of interrupted installs (safe: we hold the install lock)
        return [name for name in selected if _install_one(name, manifest[name], root, mirror, log)]


def verify(
    names: Iterable[str] | str | None = None,
    datasets_dir: os.PathLike | str | None = None,
    manifest: Manifest | None = None,
) -> None:
    """Fully re-check the installed datasets (default: all); raise :class:`DatasetError` on the first problem."""
    manifest = _resolve_manifest(manifest)
    root = _resolve_dir(datasets_dir)
    for name in _select(names, manifest):
        _verify_dataset(name, manifest[name], root / name)


def is_installed(name: str, datasets_dir: os.PathLike | str | None = None, manifest: Manifest | None = None) -> bool:
    """Fast check: the stamp matches the manifest entry and every file exists with the right size."""
    manifest = _resolve_manifest(manifest)
    entry = manifest.get(name)
    if entry is None:
        return False
    target = _resolve_dir(datasets_dir) / name
    if not _stamp_matches(name, entry, target):
        return False
    for file in entry["files"]:
        try:
            if (target / file["path"]).stat().st_size != file["size"]:
                return False
        except OSError:
            return False
    return True


def require(names: Iterable[str] | str, datasets_dir: os.PathLike | str | None = None) -> None:
    """Raise :class:`DatasetError` unless every named dataset is known and installed (fast, no sha256 pass)."""
    requested = [names] if isinstance(names, str) else list(names)
    if not requested:
        return
    manifest = load_manifest()
    root = _resolve_dir(datasets_dir)
    for name in _select(requested, manifest):
        if not is_installed(name, root, manifest):
            raise DatasetError(_not_installed_message(name, root))


def path(name: str, datasets_dir: os.PathLike | str | None = None) -> Path:
    """The folder of dataset ``name`` (whether or not it is installed yet)."""
    _select([name], load_manifest())
    return _resolve_dir(datasets_dir) / name


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _cmd_install(args: argparse.Namespace, manifest: Manifest) -> int:
    install(args.names or None, args.dir, args.mirror, manifest)
    return 0


def _cmd_verify(args: argparse.Namespace, manifest: Manifest) -> int:
    root = _resolve_dir(args.dir)
    for name in _select(args.names or None, manifest):
        verify([name], root, manifest)
        print(f"{name}: OK ({_summary(manifest[name])}) in {root / name}")
    return 0


def _cmd_list(args: argparse.Namespace, manifest: Manifest) -> int:
    root = _resolve_dir(args.dir)
    print(f"datasets folder: {root}")
    for name, entry in manifest.items():
        status = "installed" if is_installed(name, root, manifest) else "not installed"
        print(f"{name:<18} {status:<14} {_summary(entry):<18} {entry.get('title', '')}")
        print(f"{'':<18} license: {entry.get('license', {}).get('short', '?')}")
    return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", help="datasets folder (default: $COURSE_DATASETS_DIR or <course>/datasets)")
    common.add_argument("--manifest", default=MANIFEST_PATH, help=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="python -m includes.data.datasets", description="Course dataset installer.")
    commands = parser.add_subparsers(dest="command", required=True)
    install_cmd = commands.add_parser("install", parents=[common], help="download, verify and install datasets")
    install_cmd.add_argument("names", nargs="*", help="datasets to install (default: all)")
    install_cmd.add_argument("--mirror", help=f"folder or http(s):// URL holding the datasets (default: ${MIRROR_ENV})")
    install_cmd.set_defaults(handler=_cmd_install)
    verify_cmd = commands.add_parser("verify", parents=[common], help="re-check the checksums of installed datasets")
    verify_cmd.add_argument("names", nargs="*", help="datasets to verify (default: all)")
    verify_cmd.set_defaults(handler=_cmd_verify)
    list_cmd = commands.add_parser("list", parents=[common], help="list the datasets and whether they are installed")
    list_cmd.set_defaults(handler=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (1 with a plain message on a dataset problem)."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args, load_manifest(args.manifest))
    except CourseSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; no partially installed dataset was left behind", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
