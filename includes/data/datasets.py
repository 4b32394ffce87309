"""Install, verify and locate the course datasets.

The datasets are described by ``datasets/manifest.json``: for every dataset its title, license,
attribution and the list of its files, each with its size, its sha256 and where it comes from
(a direct ``url``, or a ``member`` of one of the dataset's ``archives``). The data itself is never
committed; it is installed into the datasets folder (``COURSE_DATASETS_DIR``, default
``<course>/datasets``) by ``make datasets``, i.e. ``python -m includes.data.datasets install``.

Where the bytes come from:

- a mirror, given by ``--mirror`` / ``mirror=`` or the ``COURSE_DATASETS_MIRROR`` variable: a
  local folder or an ``http(s)://`` base URL laid out as ``<mirror>/<dataset>/<path>``;
- otherwise the canonical URLs of the manifest (each archive is downloaded once).

Every file is checked against the manifest (size and sha256). A dataset is built in a staging
folder ``<datasets_dir>/.staging-<name>-<pid>`` and renamed into place only once every file has
been verified, so an interrupted install never leaves a partial ``<datasets_dir>/<name>``.
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
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from includes.paths import COURSE_ROOT, CourseSetupError, datasets_root, not_installed

MANIFEST_PATH = COURSE_ROOT / "datasets" / "manifest.json"
MANIFEST_VERSION = 1
MIRROR_ENV = "COURSE_DATASETS_MIRROR"
STAMP_NAME = ".installed.json"
LOCK_NAME = ".install.lock"
STAGING_PREFIX = ".staging-"
OLD_PREFIX = ".old-"
HTTP_TIMEOUT = 60.0  # seconds without any progress before a download is abandoned
CHUNK_SIZE = 1 << 20
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
# Checksums
# --------------------------------------------------------------------------------------------


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def _digest(chunks: Iterable[bytes], sink: Any = None) -> tuple[int, str]:
    """Size and sha256 of a stream of chunks, optionally copying them to ``sink``."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return size, digest.hexdigest()


def _write_chunks(chunks: Iterable[bytes], dest: Path) -> tuple[int, str]:
    """Write the chunks to ``dest`` (creating parent folders); return size and sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as sink:
        return _digest(chunks, sink)


def _mismatch(what: str, expected: tuple[int | None, str | None], actual: tuple[int, str], fix: str) -> DatasetError:
    """The error for a file or archive whose bytes are not the ones the manifest expects."""
    (want_size, want_sha), (size, sha) = expected, actual
    return DatasetError(
        f"{what} does not match the manifest: expected sha256 {want_sha or '(any)'} ({want_size} bytes), "
        f"got sha256 {sha} ({size} bytes). {fix}"
    )


def _matches(expected: Mapping[str, Any], size: int, sha: str) -> bool:
    """True when size and sha256 agree with ``expected`` (a null expectation accepts anything)."""
    return expected.get("size") in (None, size) and expected.get("sha256") in (None, sha)


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
# Sources: where the bytes of a file come from
# --------------------------------------------------------------------------------------------


def _download_error(what: str, url: str, exc: BaseException) -> DatasetError:
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    else:
        reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    return DatasetError(
        f"could not download {what} from {url}: {reason}. Check your connection, or set "
        f"{MIRROR_ENV} to a folder holding the datasets."
    )


def _url_chunks(url: str, what: str) -> Iterator[bytes]:
    """Stream ``url``; any network failure becomes a :class:`DatasetError`."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            while chunk := response.read(CHUNK_SIZE):
                yield chunk
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        raise _download_error(what, url, exc) from exc


class _LocalMirror:
    """A folder laid out as ``<root>/<dataset>/<path>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = f"mirror {root}"

    def where(self, name: str, file: Mapping[str, Any]) -> str:
        return str(self.root / name / file["path"])

    def chunks(self, name: str, entry: Mapping[str, Any], file: Mapping[str, Any]) -> Iterator[bytes]:
        path = self.root / name / file["path"]
        if not path.is_file():
            raise DatasetError(
                f"the dataset mirror {self.root} has no file {name}/{file['path']}. Check {MIRROR_ENV} "
                f"(or --mirror), or unset it to download from the original source."
            )
        yield from _file_chunks(path)

    def close(self) -> None:
        """Nothing to clean up."""


class _HttpMirror:
    """An ``http(s)://`` base URL laid out as ``<base>/<dataset>/<path>``."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.label = f"mirror {self.base}"

    def where(self, name: str, file: Mapping[str, Any]) -> str:
        return f"{self.base}/{urllib.parse.quote(name)}/{urllib.parse.quote(file['path'])}"

    def chunks(self, name: str, entry: Mapping[str, Any], file: Mapping[str, Any]) -> Iterator[bytes]:
        yield from _url_chunks(self.where(name, file), f"{name}/{file['path']}")

    def close(self) -> None:
        """Nothing to clean up."""


class _CanonicalSource:
    """The manifest's own URLs; each archive is downloaded once into ``scratch`` and verified."""

    label = "the original sources"

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._archives: dict[str, Path] = {}

    def where(self, name: str, file: Mapping[str, Any]) -> str:
        if "url" in file:
            return file["url"]
        return f"member {file['member']} of {file['archive']}"

    def chunks(self, name: str, entry: Mapping[str, Any], file: Mapping[str, Any]) -> Iterator[bytes]:
        archives = {archive["url"]: archive for archive in entry.get("archives") or []}
        if "url" in file and file["url"] not in archives:
            yield from _url_chunks(file["url"], f"{name}/{file['path']}")
            return
        if "url" in file:  # the archive itself is also a file of the dataset: download it once
            yield from _file_chunks(self._fetch(name, archives[file["url"]]))
            return
        archive = next(a for a in archives.values() if a["name"] == file["archive"])
        yield from self._member_chunks(name, archive, file["member"])

    def _fetch(self, name: str, archive: Mapping[str, Any]) -> Path:
        """Download ``archive`` (once) and check its size/sha256 when the manifest knows them."""
        url = archive["url"]
        if url not in self._archives:
            dest = self.scratch / f"archive-{len(self._archives)}.zip"
            size, sha = _write_chunks(_url_chunks(url, f"{name} archive {archive['name']}"), dest)
            if not _matches(archive, size, sha):
                raise _mismatch(
                    f"Dataset '{name}': archive {archive['name']} downloaded from {url}",
                    (archive.get("size"), archive.get("sha256")),
                    (size, sha),
                    _source_fix(name),
                )
            self._archives[url] = dest
        return self._archives[url]

    def _member_chunks(self, name: str, archive: Mapping[str, Any], member: str) -> Iterator[bytes]:
        path = self._fetch(name, archive)
        try:
            with zipfile.ZipFile(path) as bundle, bundle.open(member) as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    yield chunk
        except KeyError as exc:
            raise DatasetError(
                f"Dataset '{name}': archive {archive['name']} ({archive['url']}) has no member {member}. "
                f"{_source_fix(name)}"
            ) from exc
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(
                f"Dataset '{name}': archive {archive['name']} from {archive['url']} is not a readable "
                f"zip file ({exc}). {_source_fix(name)}"
            ) from exc

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


_Source = _LocalMirror | _HttpMirror | _CanonicalSource


def _open_source(mirror: str | None, scratch: Path) -> _Source:
    """Interpret a mirror setting (None: the canonical URLs)."""
    if not mirror:
        return _CanonicalSource(scratch)
    if mirror.startswith(("http://", "https://")):
        return _HttpMirror(mirror)
    if mirror.startswith("file://"):
        mirror = urllib.request.url2pathname(urllib.parse.urlparse(mirror).path)
    root = Path(mirror).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"the dataset mirror {mirror!r} is neither a folder nor an http(s):// URL "
            f"(set by --mirror or {MIRROR_ENV})."
        )
    return _LocalMirror(root.resolve())


# --------------------------------------------------------------------------------------------
# Installed copies: verification and stamp
# --------------------------------------------------------------------------------------------


def _verify_dataset(name: str, entry: Mapping[str, Any], target: Path) -> None:
    """Check every file of an installed dataset (size and sha256); raise on the first problem."""
    if not target.is_dir():
        raise DatasetError(_not_installed_message(name, target.parent))
    for file in entry["files"]:
        path = target / file["path"]
        if not path.is_file():
            raise DatasetError(
                f"Dataset '{name}': file {path} is missing. {_installed_fix(name, target)}"
            )
        size, sha = _digest(_file_chunks(path))
        if not _matches(file, size, sha):
            raise _mismatch(
                f"Dataset '{name}': file {path}", (file["size"], file["sha256"]), (size, sha),
                _installed_fix(name, target),
            )


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


@contextlib.contextmanager
def _install_lock(root: Path, log: Logger) -> Iterator[None]:
    """Hold an exclusive flock on ``<root>/.install.lock`` so concurrent installs take turns."""
    with open(root / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another dataset install is running in {root}; waiting for it to finish ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(root: Path) -> None:
    """Delete staging/old folders of interrupted installs (safe: we hold the install lock)."""
    for child in root.iterdir():
        if child.name.startswith((STAGING_PREFIX, OLD_PREFIX)):
            _remove(child)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f"{OLD_PREFIX}{target.name}-{os.getpid()}")
        os.rename(target, old)
    os.rename(staging, target)
    if old is not None:
        _remove(old)


def _build(name: str, entry: Mapping[str, Any], staging: Path, source: _Source) -> None:
    """Fetch every file into ``staging`` and check it; then write the stamp."""
    for file in entry["files"]:
        size, sha = _write_chunks(source.chunks(name, entry, file), staging / file["path"])
        if not _matches(file, size, sha):
            raise _mismatch(
                f"Dataset '{name}': file {file['path']} (from {source.where(name, file)})",
                (file["size"], file["sha256"]), (size, sha), _source_fix(name),
            )
    _write_stamp(name, entry, staging)


def _is_verified_copy(name: str, entry: Mapping[str, Any], target: Path) -> bool:
    """True when ``target`` holds every file of the dataset with the right size and sha256."""
    try:
        _verify_dataset(name, entry, target)
    except DatasetError:
        return False
    return True


def _install_one(name: str, entry: Mapping[str, Any], root: Path, mirror: str | None, log: Logger) -> bool:
    """Install one dataset unless a verified copy is present; return True if it was (re)installed."""
    target = root / name
    present = target.exists()
    if present and _is_verified_copy(name, entry, target):
        if not _stamp_matches(name, entry, target):
            _write_stamp(name, entry, target)
        log(f"{name}: already installed ({_summary(entry)}) in {target}")
        return False
    staging = root / f"{STAGING_PREFIX}{name}-{os.getpid()}"
    source = _open_source(mirror, staging.with_name(staging.name + ".downloads"))
    try:
        staging.mkdir()
        _build(name, entry, staging, source)
        _swap_into_place(staging, target)
    finally:
        _remove(staging)
        source.close()
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
    mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    root.mkdir(parents=True, exist_ok=True)
    installed = []
    with _install_lock(root, log):
        _remove_leftovers(root)
        for name in selected:
            if _install_one(name, manifest[name], root, mirror.strip() or None, log):
                installed.append(name)
    return installed


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
