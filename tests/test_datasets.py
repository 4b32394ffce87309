"""Tests of the dataset installer (includes/datasets.py) against the real course mirror.

The mirror is ``$COURSE_DATASETS_MIRROR`` when that is a folder, else ``<repo>/../shared/datasets``,
else the course's own installed datasets (``make setup`` verified every file against the manifest,
and they are laid out as a mirror is); without any, the tests that need data fail and say so. Most tests use a sub-manifest of two small
datasets (airbnb-sf, ml-latest-small: 3.5 MB) so the whole file runs in a few seconds. HTTP
sources are served by ``http.server`` on 127.0.0.1, never the Internet.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from includes.data import datasets  # noqa: E402
from includes.data.datasets import DatasetError  # noqa: E402
from includes.runtime.preflight import CourseSetupError  # noqa: E402

SMALL = ("airbnb-sf", "ml-latest-small")
TIMEOUT = 30  # seconds: upper bound of every wait in these tests


def _find_mirror() -> Path | None:
    candidates = [os.environ.get(datasets.MIRROR_ENV, ""), str(REPO.parent / "shared" / "datasets")]
    found = next((Path(c) for c in candidates if c and Path(c).is_dir()), None)
    if found is None and all((REPO / "datasets" / name).is_dir() for name in SMALL):
        found = REPO / "datasets"
    return found


MIRROR = _find_mirror()


def needs_mirror(test):
    """The test reads the mirror's files: without one it fails (never skips) with what to do."""
    @functools.wraps(test)
    def with_mirror(*args, **kwargs):
        if MIRROR is None:
            pytest.fail(f"no dataset mirror: run `make setup` (it installs datasets/), set "
                        f"{datasets.MIRROR_ENV} to a folder, or provide <repo>/../shared/datasets")
        return test(*args, **kwargs)
    return with_mirror


# ------------------------------------------------------------------------------------------
# Helpers and fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a mirror or datasets folder from the caller's environment."""
    monkeypatch.delenv(datasets.MIRROR_ENV, raising=False)
    monkeypatch.delenv("COURSE_DATASETS_DIR", raising=False)


@pytest.fixture(scope="module")
def manifest() -> datasets.Manifest:
    return datasets.load_manifest()


@pytest.fixture
def small(manifest: datasets.Manifest) -> datasets.Manifest:
    """The real manifest restricted to two small datasets (deep copy: tests may edit it)."""
    return json.loads(json.dumps({name: manifest[name] for name in SMALL}))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def copy_mirror(names: tuple[str, ...], dest: Path) -> Path:
    for name in names:
        shutil.copytree(MIRROR / name, dest / name)
    return dest


def write_manifest(manifest: datasets.Manifest, dest: Path) -> Path:
    datasets.save_manifest(manifest, dest)
    return dest


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith((".staging-", ".old-")))


def zip_members(entry: dict, source: Path, dest: Path) -> Path:
    """Zip the files of ``source`` (a dataset folder) under the member names of ``entry``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as bundle:
        for file in entry["files"]:
            bundle.write(source / file["path"], file["member"])
    return dest


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


class QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that records request paths and does not log to stderr."""

    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def serve(directory: Path, handler: type[QuietHandler] = QuietHandler) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` on 127.0.0.1 (random port); yield the base URL and the request log."""
    requests: list[str] = []
    handler_class = type("Handler", (handler,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler_class, directory=str(directory)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "includes.data.datasets", *args],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (datasets.MIRROR_ENV, "COURSE_DATASETS_DIR")}
    env["PYTHONPATH"] = str(REPO)
    return env


def assert_installed_ok(root: Path, manifest: datasets.Manifest) -> None:
    for name, entry in manifest.items():
        for file in entry["files"]:
            path = root / name / file["path"]
            assert path.stat().st_size == file["size"]
            assert sha256_of(path) == file["sha256"]
        assert (root / name / datasets.STAMP_NAME).is_file()
        assert datasets.is_installed(name, root, manifest)
    datasets.verify(list(manifest), root, manifest)
    assert leftovers(root) == []


# ------------------------------------------------------------------------------------------
# 1-3: installing from the three kinds of sources
# ------------------------------------------------------------------------------------------


@needs_mirror
def test_install_from_local_mirror_then_noop(tmp_path: Path, small: datasets.Manifest) -> None:
    root, lines = tmp_path / "ds", []
    assert datasets.install(None, root, str(MIRROR), small, log=lines.append) == list(SMALL)
    assert_installed_ok(root, small)
    datasets.require(list(SMALL), root)
    assert datasets.path("airbnb-sf", root) == root / "airbnb-sf"
    assert len(lines) == 2 and all("installed" in line and "MB" in line for line in lines)
    stamp = json.loads((root / "airbnb-sf" / datasets.STAMP_NAME).read_text())
    assert set(stamp["files"]) == {f["path"] for f in small["airbnb-sf"]["files"]}

    before, lines = {name: mtimes(root / name) for name in SMALL}, []
    time.sleep(0.01)
    assert datasets.install(None, root, str(MIRROR), small, log=lines.append) == []
    assert [line.split(":")[0] for line in lines] == list(SMALL)
    assert all("already installed" in line for line in lines)
    assert {name: mtimes(root / name) for name in SMALL} == before


@needs_mirror
def test_install_over_http_mirror(tmp_path: Path, small: datasets.Manifest, capfd: pytest.CaptureFixture) -> None:
    root = tmp_path / "ds"
    with serve(MIRROR) as (url, requests):
        assert datasets.install(None, root, url + "/", small, log=lambda _: None) == list(SMALL)
    assert_installed_ok(root, small)
    assert len(requests) == sum(len(entry["files"]) for entry in small.values())
    assert capfd.readouterr() == ("", "")  # pooch's "Downloading data from ..." lines stay quiet


@needs_mirror
def test_install_from_canonical_archive_and_urls(
    tmp_path: Path, small: datasets.Manifest, capfd: pytest.CaptureFixture
) -> None:
    """No mirror: archive members are extracted from a zip downloaded once; direct URLs are fetched."""
    origin = tmp_path / "origin"
    shutil.copytree(MIRROR / "airbnb-sf", origin / "direct")
    archive = zip_members(small["ml-latest-small"], MIRROR / "ml-latest-small", origin / "ml-latest-small.zip")
    root = tmp_path / "ds"
    with serve(origin) as (url, requests):
        for file in small["airbnb-sf"]["files"]:
            file["url"] = f"{url}/direct/{file['path']}"
        small["ml-latest-small"]["archives"][0].update(
            url=f"{url}/ml-latest-small.zip", size=archive.stat().st_size, sha256=sha256_of(archive)
        )
        assert datasets.install(None, root, "", small, log=lambda _: None) == list(SMALL)
    assert_installed_ok(root, small)
    assert requests.count("/ml-latest-small.zip") == 1
    assert not list(tmp_path.glob("ds/*.downloads")) and not list(tmp_path.glob("ds/*/.downloads"))
    assert capfd.readouterr() == ("", "")


@needs_mirror
@pytest.mark.parametrize("flip, archive_checksum, error", [
    (None, {"sha256": "0" * 64}, r"ml-latest-small.*archive ml-latest-small\.zip"),
    # the manifest does not know the zip's checksum: each member is still checked against its own
    ("movies.csv", {"size": None, "sha256": None}, r"file movies\.csv \(from member ml-latest-small/movies\.csv"),
], ids=["archive", "member"])
def test_archive_with_wrong_checksum_is_refused(
    tmp_path: Path, small: datasets.Manifest, flip: str | None, archive_checksum: dict, error: str
) -> None:
    source = copy_mirror(("ml-latest-small",), tmp_path / "copy") / "ml-latest-small"
    if flip:
        flip_byte(source / flip)
    origin = zip_members(small["ml-latest-small"], source, tmp_path / "origin" / "ml.zip").parent
    root = tmp_path / "ds"
    with serve(origin) as (url, _):
        small["ml-latest-small"]["archives"][0].update(url=f"{url}/ml.zip", **archive_checksum)
        with pytest.raises(DatasetError, match=error):
            datasets.install(["ml-latest-small"], root, "", small, log=lambda _: None)
    assert not (root / "ml-latest-small").exists()
    assert leftovers(root) == []


# ------------------------------------------------------------------------------------------
# 4: corruption is refused (at install) and detected (after install)
# ------------------------------------------------------------------------------------------


@needs_mirror
def test_flipped_byte_in_mirror_is_refused(tmp_path: Path, small: datasets.Manifest) -> None:
    bad_mirror = copy_mirror(SMALL, tmp_path / "mirror")
    victim = small["ml-latest-small"]["files"][3]["path"]  # ratings.csv, after 3 good files
    flip_byte(bad_mirror / "ml-latest-small" / victim)
    root = tmp_path / "ds"
    with pytest.raises(DatasetError) as caught:
        datasets.install(["ml-latest-small"], root, str(bad_mirror), small, log=lambda _: None)
    message = str(caught.value)
    assert "ml-latest-small" in message and victim in message
    assert small["ml-latest-small"]["files"][3]["sha256"] in message
    assert "make datasets" in message and "mirror copy is corrupted" in message
    assert isinstance(caught.value, CourseSetupError)
    assert not (root / "ml-latest-small").exists()
    assert leftovers(root) == []


@needs_mirror
def test_verify_detects_corruption_and_install_repairs(tmp_path: Path, small: datasets.Manifest) -> None:
    root = tmp_path / "ds"
    datasets.install(["airbnb-sf"], root, str(MIRROR), small, log=lambda _: None)
    part = next(f["path"] for f in small["airbnb-sf"]["files"] if f["path"].endswith(".parquet"))
    flip_byte(root / "airbnb-sf" / part)
    with pytest.raises(DatasetError, match=re.escape(part)):
        datasets.verify(["airbnb-sf"], root, small)

    lines: list[str] = []
    assert datasets.install(["airbnb-sf"], root, str(MIRROR), small, log=lines.append) == ["airbnb-sf"]
    assert "replaced" in lines[0]
    datasets.verify(["airbnb-sf"], root, small)
    (root / "airbnb-sf" / part).unlink()
    with pytest.raises(DatasetError, match="missing"):
        datasets.verify(["airbnb-sf"], root, small)
    assert not datasets.is_installed("airbnb-sf", root, small)


# ------------------------------------------------------------------------------------------
# 5: an install killed mid-download leaves nothing partial
# ------------------------------------------------------------------------------------------


class HangingHandler(QuietHandler):
    """Serves files normally except ``hang_on``: headers and half the body, then silence."""

    hang_on = "ratings.csv"
    hanging = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        if not self.path.endswith(self.hang_on):
            return super().do_GET()
        body = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        type(self).hanging.set()
        type(self).release.wait(TIMEOUT)


@needs_mirror
def test_killed_install_leaves_no_partial_dataset(tmp_path: Path, small: datasets.Manifest) -> None:
    root, name = tmp_path / "ds", "ml-latest-small"
    manifest_file = write_manifest({name: small[name]}, tmp_path / "manifest.json")
    hanging, release = threading.Event(), threading.Event()
    handler = type("Hanging", (HangingHandler,), {"hanging": hanging, "release": release})
    with serve(MIRROR, handler) as (url, _):
        proc = subprocess.Popen(
            [sys.executable, "-m", "includes.data.datasets", "install", name,
             "--mirror", url, "--dir", str(root), "--manifest", str(manifest_file)],
            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            assert hanging.wait(TIMEOUT), "the installer never requested the file that hangs"
            staging = list(root.glob(f".staging-{name}-*"))
            assert len(staging) == 1 and (staging[0] / "README.txt").is_file()
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(TIMEOUT) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(TIMEOUT)
            proc.stdout.close()
            proc.stderr.close()
            release.set()
    assert not (root / name).exists()
    assert not datasets.is_installed(name, root, small)
    assert leftovers(root) == [staging[0].name]

    assert datasets.install([name], root, str(MIRROR), small, log=lambda _: None) == [name]
    assert_installed_ok(root, {name: small[name]})


@needs_mirror
def test_concurrent_install_waits_for_the_lock(tmp_path: Path, small: datasets.Manifest) -> None:
    import fcntl

    root = tmp_path / "ds"
    root.mkdir()
    lines: list[str] = []
    with open(root / datasets.LOCK_NAME, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(
            target=datasets.install, args=(["airbnb-sf"], root, str(MIRROR), small, lines.append), daemon=True
        )
        worker.start()
        deadline = time.monotonic() + TIMEOUT
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lines and "waiting" in lines[0]
        assert not (root / "airbnb-sf").exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(TIMEOUT)
    assert not worker.is_alive()
    assert datasets.is_installed("airbnb-sf", root, small)


# ------------------------------------------------------------------------------------------
# 6: require / path / download errors
# ------------------------------------------------------------------------------------------


def test_require_missing_and_unknown(tmp_path: Path, manifest: datasets.Manifest) -> None:
    datasets.require([], tmp_path)
    with pytest.raises(DatasetError) as caught:
        datasets.require(["airbnb-sf"], tmp_path)
    assert "'airbnb-sf' is not installed" in str(caught.value)
    assert str(tmp_path) in str(caught.value) and "make setup" in str(caught.value)
    with pytest.raises(DatasetError) as caught:
        datasets.require(("nope",), tmp_path)
    assert "unknown dataset 'nope'" in str(caught.value)
    assert all(name in str(caught.value) for name in manifest)
    with pytest.raises(DatasetError, match="unknown dataset"):
        datasets.path("nope", tmp_path)


def test_unreachable_download_is_a_clear_error(tmp_path: Path, small: datasets.Manifest) -> None:
    with serve(tmp_path) as (url, _):
        pass  # the port is closed again: nothing answers there any more
    for file in small["airbnb-sf"]["files"]:
        file["url"] = f"{url}/{file['path']}"
    with pytest.raises(DatasetError) as caught:
        datasets.install(["airbnb-sf"], tmp_path / "ds", "", small, log=lambda _: None)
    message = str(caught.value)
    assert message.startswith("could not download airbnb-sf/") and url in message
    assert datasets.MIRROR_ENV in message
    assert not (tmp_path / "ds" / "airbnb-sf").exists()


def test_http_mirror_missing_file_is_a_clear_error(tmp_path: Path, small: datasets.Manifest) -> None:
    with serve(tmp_path) as (url, _), pytest.raises(DatasetError, match="HTTP 404"):
        datasets.install(["airbnb-sf"], tmp_path / "ds", url, small, log=lambda _: None)


# ------------------------------------------------------------------------------------------
# 7: the manifest itself
# ------------------------------------------------------------------------------------------


@needs_mirror
def test_manifest_covers_every_mirror_file(manifest: datasets.Manifest) -> None:
    on_disk = {
        (p.relative_to(MIRROR).parts[0], p.relative_to(MIRROR / p.relative_to(MIRROR).parts[0]).as_posix()):
            (p.stat().st_size, sha256_of(p))
        for p in MIRROR.rglob("*")
        # the datasets' folders (an installed datasets/ also holds the manifest and lock files)
        if p.is_file() and p.name != "SOURCE.md" and len(p.relative_to(MIRROR).parts) > 1
        and not p.name.startswith(".")
    }
    declared = {(name, f["path"]): (f["size"], f["sha256"]) for name, e in manifest.items() for f in e["files"]}
    assert declared == on_disk


def source_md_table(path: Path) -> dict[str, tuple[int, str]]:
    """``{file: (bytes, sha256)}`` from the table rows of a SOURCE.md (first integer cell = bytes)."""
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and re.fullmatch(r"`[0-9a-f]{64}`", cells[-1]):
            size = next(int(cell) for cell in cells[1:] if cell.isdigit())
            table[cells[0].strip("`")] = (size, cells[-1].strip("`"))
    return table


@needs_mirror
def test_manifest_agrees_with_source_md(manifest: datasets.Manifest) -> None:
    if not (MIRROR / "airbnb-sf" / "SOURCE.md").is_file():
        pytest.fail(f"{MIRROR} has no SOURCE.md records (installed copies do not): this test needs the "
                    f"course's dataset mirror, ../shared/datasets or {datasets.MIRROR_ENV}")
    for name, entry in manifest.items():
        documented = source_md_table(MIRROR / name / "SOURCE.md")
        assert documented == {f["path"]: (f["size"], f["sha256"]) for f in entry["files"]}, name


def test_manifest_sources_and_metadata(manifest: datasets.Manifest) -> None:
    assert list(manifest) == ["airbnb-sf", "airbnb-boston-raw", "ml-100k", "ml-latest-small", "jester"]
    for name, entry in manifest.items():
        for key in ("title", "description", "attribution", "homepage"):
            assert entry[key] and "\n" not in entry[key], (name, key)
        assert entry["license"]["short"] and entry["license"]["terms"]
        assert not any(f["path"].endswith("SOURCE.md") for f in entry["files"])
    for name in ("ml-100k", "ml-latest-small"):
        archives = {a["name"]: a["url"] for a in manifest[name]["archives"]}
        assert archives == {f"{name}.zip": f"https://files.grouplens.org/datasets/movielens/{name}.zip"}
        for file in manifest[name]["files"]:
            assert "url" not in file and file["archive"] == f"{name}.zip"
            assert file["member"] == f"{name}/{file['path']}"
    jester_archives = {a["name"]: a for a in manifest["jester"]["archives"]}
    jester_files = {f["path"]: f for f in manifest["jester"]["files"]}
    for archive in jester_archives.values():  # the zips are known byte for byte, and also installed
        assert archive["url"].startswith("https://eigentaste.berkeley.edu/dataset/")
        assert (archive["size"], archive["sha256"]) == (jester_files[archive["name"]]["size"],
                                                        jester_files[archive["name"]]["sha256"])


def test_manifest_file_is_stably_formatted(manifest: datasets.Manifest, tmp_path: Path) -> None:
    copy = write_manifest(manifest, tmp_path / "manifest.json")
    assert copy.read_text(encoding="utf-8") == datasets.MANIFEST_PATH.read_text(encoding="utf-8")


def test_invalid_manifest_is_rejected(tmp_path: Path, manifest: datasets.Manifest) -> None:
    entry = json.loads(json.dumps(manifest["airbnb-sf"]))
    entry["files"][0]["path"] = "../escape.md"
    bad = write_manifest({"airbnb-sf": entry}, tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="invalid or duplicate file path"):
        datasets.load_manifest(bad)


# ------------------------------------------------------------------------------------------
# 8: the command line
# ------------------------------------------------------------------------------------------


@needs_mirror
def test_cli_install_verify_list_and_error(tmp_path: Path, small: datasets.Manifest) -> None:
    manifest_file = str(write_manifest(small, tmp_path / "manifest.json"))
    root = str(tmp_path / "ds")
    ok = run_cli("install", "airbnb-sf", "--mirror", str(MIRROR), "--dir", root, "--manifest", manifest_file)
    assert ok.returncode == 0, ok.stderr
    assert "airbnb-sf: installed 5 files" in ok.stdout
    checked = run_cli("verify", "airbnb-sf", "--dir", root, "--manifest", manifest_file)
    assert checked.returncode == 0 and "airbnb-sf: OK" in checked.stdout
    listed = run_cli("list", "--dir", root, "--manifest", manifest_file)
    assert re.search(r"airbnb-sf\s+installed", listed.stdout)
    assert re.search(r"ml-latest-small\s+not installed", listed.stdout)

    bad_mirror = copy_mirror(("ml-latest-small",), tmp_path / "mirror")
    flip_byte(bad_mirror / "ml-latest-small" / "movies.csv")
    failed = run_cli("install", "ml-latest-small", "--mirror", str(bad_mirror), "--dir", root,
                     "--manifest", manifest_file)
    assert failed.returncode == 1
    assert "ml-latest-small" in failed.stderr and "movies.csv" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    assert not (tmp_path / "ds" / "ml-latest-small").exists()
