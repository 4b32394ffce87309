"""includes/tools/machine.py: the one machine description the benchmarks and `make course` record."""

import json
import platform

from includes.tools import machine
from includes.tools.runner import write_times

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Test CPU @ 3.00GHz
flags\t\t: fpu sse2

processor\t: 1
model name\t: Test CPU @ 3.00GHz
"""

KEYS = {"cpu", "logical_cores", "physical_cores", "ram_bytes", "os", "python", "java", "spark", "pandas",
        "scikit-learn", "numpy", "pyarrow", "numeric_pin", "load_average"}


def test_cpu_model_is_the_model_name_line_of_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert machine.cpu_model(tmp_path / "cpuinfo") == "Test CPU @ 3.00GHz"


def test_cpu_model_falls_back_to_platform_without_a_model_name(tmp_path):
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd0c\n")
    assert machine.cpu_model(tmp_path / "arm") == platform.processor()
    assert machine.cpu_model(tmp_path / "absent") == platform.processor()


def test_describe_has_every_key_with_its_type(tmp_path, fake_java, monkeypatch):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    monkeypatch.setenv("JAVA_HOME", str(fake_java('openjdk version "17.0.9" 2023-10-17\nOpenJDK Runtime')))
    described = machine.describe(tmp_path / "cpuinfo")
    assert set(described) == KEYS
    assert described["cpu"] == "Test CPU @ 3.00GHz"
    assert described["java"] == 'openjdk version "17.0.9" 2023-10-17'
    assert isinstance(described["logical_cores"], int) and described["logical_cores"] >= 1
    assert described["physical_cores"] is None or 1 <= described["physical_cores"] <= described["logical_cores"]
    assert isinstance(described["ram_bytes"], int) and described["ram_bytes"] > 2**28
    assert described["python"] == platform.python_version() and described["os"] == platform.platform()
    for key in ("spark", "pandas", "scikit-learn", "numpy", "pyarrow"):  # the course's environment has them all
        assert isinstance(described[key], str) and described[key][0].isdigit(), key
    assert described["numeric_pin"].startswith("numpy/scipy: ")
    assert len(described["load_average"]) == 3 and all(isinstance(v, float) for v in described["load_average"])
    assert json.loads(json.dumps(described)) == described  # it goes into JSON files as it is


def test_no_java_and_no_package_give_none(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java there
    assert machine.java_version() is None
    assert machine.package_version("no-such-distribution-of-the-course") is None


def test_make_course_records_the_described_machine(tmp_path, fake_java, monkeypatch):
    """runner.write_times keeps its one-line ``machine`` (the README's agenda quotes it) and adds
    the whole description."""
    monkeypatch.setenv("JAVA_HOME", str(fake_java('openjdk version "21.0.2" 2024-01-16')))
    record = json.loads(write_times({"ML01_Data_Cleansing": 60.0}, 100.0, 2, tmp_path / "times.json").read_text())
    described = record["machine_description"]
    assert set(described) == KEYS and described["java"] == 'openjdk version "21.0.2" 2024-01-16'
    assert record["machine"] == f"{described['cpu']}, {described['logical_cores']} cores"
