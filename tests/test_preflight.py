import socket

import pytest

from includes.runtime.preflight import CourseSetupError, check_java, check_master_reachable, parse_java_major


@pytest.mark.parametrize(
    "text, major",
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21.0.2" 2024-01-16 LTS', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.22" 2024-01-16', 11),
        ('openjdk version "22" 2024-03-19', 22),
        ("no version here", None),
    ],
)
def test_parse_java_major(text, major):
    assert parse_java_major(text) == major


def test_supported_java_passes(fake_java, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_java('openjdk version "21.0.2" 2024-01-16')))
    assert check_java() == 21


def test_old_java_is_refused_with_what_to_do(fake_java, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_java('java version "1.8.0_392"')))
    with pytest.raises(CourseSetupError) as err:
        check_java()
    message = str(err.value)
    assert "Java 8" in message and "17 or 21" in message and "JAVA_HOME" in message


def test_missing_java_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java anywhere
    with pytest.raises(CourseSetupError, match="Java was not found"):
        check_java()


def test_unreadable_java_version(fake_java, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_java("Error: could not create the Java VM", 1)))
    with pytest.raises(CourseSetupError, match="Could not read the Java version"):
        check_java()


def test_local_master_needs_no_network():
    check_master_reachable("local[*]")
    check_master_reachable("local[2]")


def test_master_that_answers_passes():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        check_master_reachable(f"spark://127.0.0.1:{port}")


def test_spark_connect_is_refused_with_the_reason():
    """The README promises classic Spark only; a Connect URL gets an explanation, not a late failure."""
    with pytest.raises(CourseSetupError, match="Spark Connect endpoint") as err:
        check_master_reachable("sc://127.0.0.1:15002")
    assert "spark://HOST:7077" in str(err.value) and "SparkContext" in str(err.value)


def test_master_that_does_not_answer_is_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connection refused
        with pytest.raises(CourseSetupError) as err:
            check_master_reachable(f"spark://127.0.0.1:{port}", timeout=2)
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "unset COURSE_SPARK_MASTER" in str(err.value)


def test_any_answering_master_of_a_list_passes():
    with socket.socket() as server, socket.socket() as dead:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        dead.bind(("127.0.0.1", 0))
        url = f"spark://127.0.0.1:{dead.getsockname()[1]},127.0.0.1:{server.getsockname()[1]}"
        check_master_reachable(url, timeout=2)


def test_not_a_spark_url():
    with pytest.raises(CourseSetupError, match="is not a Spark URL"):
        check_master_reachable("http://example.invalid:8080")
