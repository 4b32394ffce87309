"""Lesson algorithms shared by notebooks, tests and benchmarks."""
