"""The course test suite (a package, so that pytest.ini can load tests.course_plugin by name)."""
