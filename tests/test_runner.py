"""includes/runner.py: per-cell timing of executed notebooks."""

import nbformat
import pytest

from includes.tools.runner import Result, cell_seconds, execute


def _cell(kind, start=None, end=None):
    cell = nbformat.v4.new_code_cell("x = 1") if kind == "code" else nbformat.v4.new_markdown_cell("text")
    if start:
        cell.metadata["execution"] = {"iopub.execute_input": start, "shell.execute_reply": end}
    return cell


def test_cell_seconds_reads_nbclient_timing():
    nb = nbformat.v4.new_notebook(cells=[
        _cell("markdown"),
        _cell("code", "2026-11-23T14:00:00.000000Z", "2026-11-23T14:00:02.500000Z"),
        _cell("code"),  # not executed
        _cell("code", "2026-11-23T14:00:03.000000Z", "2026-11-23T14:01:13.000000Z"),
    ])
    assert cell_seconds(nb) == {1: 2.5, 3: 70.0}
    result = Result(path=None, seconds=73.0, error=None, notebook=nb)
    assert result.slowest_cells(1) == [(3, 70.0)]
    assert result.timing_line() == "         slowest: cell 3 70 s, cell 1 2 s"


def test_execute_records_the_time_of_every_code_cell(tmp_path):
    path = tmp_path / "timed.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# timing"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(1.2)"),
        nbformat.v4.new_code_cell("print('done')"),
    ]), path)
    result = execute(path)
    assert result.ok, result.error
    seconds = cell_seconds(result.notebook)
    assert set(seconds) == {1, 2}
    assert seconds[1] >= 1.2 > seconds[2]
    assert result.slowest_cells(1)[0][0] == 1


def test_course_runs_two_notebooks_at_a_time_by_default(tmp_path, capsys, monkeypatch):
    """Without COURSE_JOBS (what the README promises for `make course`): each notebook records when
    it ran, and the runs overlap; COURSE_JOBS=1 asks for one at a time, nonsense is refused."""
    from includes.tools.runner import course_jobs, run_course

    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "import time, pathlib\n"
            f"pathlib.Path({str(tmp_path / name)!r} + '.start').write_text(str(time.time()))\n"
            "time.sleep(3)\n"
            f"pathlib.Path({str(tmp_path / name)!r} + '.end').write_text(str(time.time()))")]), path)
        paths.append(path)
    monkeypatch.delenv("COURSE_JOBS", raising=False)  # the default: two at a time
    assert run_course(paths, build_dir=tmp_path / "build", jobs=course_jobs()) == 0
    stamp = {p.name: float(p.read_text()) for p in tmp_path.glob("*.start")} | \
            {p.name: float(p.read_text()) for p in tmp_path.glob("*.end")}
    assert stamp["a.start"] < stamp["b.end"] and stamp["b.start"] < stamp["a.end"], stamp  # they overlapped
    out = capsys.readouterr().out
    assert "2 at a time" in out and "the whole course took" in out and "2 OK, 0 failed" in out
    assert (tmp_path / "build" / "html" / tmp_path.name / "a.html").exists()
    monkeypatch.setenv("COURSE_JOBS", "1")
    assert course_jobs() == 1
    monkeypatch.setenv("COURSE_JOBS", "zero")
    with pytest.raises(SystemExit, match="COURSE_JOBS"):
        course_jobs()
