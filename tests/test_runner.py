"""includes/runner.py: per-cell timing of executed notebooks."""

import nbformat

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
