"""Shared code of the course: classroom setup, datasets, lab generation and lab checks.

Notebooks use it through the one setup cell, ``%run ../includes/classroom_setup.py <ID>``.
"""

__all__ = ["classroom", "checks", "datasets", "labs", "preflight", "runner"]
