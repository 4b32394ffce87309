"""The course agenda: every notebook's ID, day, title, kind, data and file stem.

This table is the repository's agenda (the course authors keep its source outside the
repository); the README's agenda section and the notebook-name tests are derived from it.

Lessons live in notebooks/<stem>.ipynb; labs in solutions/<stem>.ipynb (complete) and
labs/<stem>.ipynb (generated). Names are fixed: tests check every notebook against this table.
The README's agenda table is generated from it: ``python -m includes.tools.agenda --write``.

Its "Run" column is each notebook's time in one ``make course`` run, from the committed record
:data:`TIMES` (``make course`` writes ``build/course-times.json``; ``--times that-file --write``
copies it there and updates the table), so an instructor can plan a day.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

from includes.paths import COURSE_ROOT

README = COURSE_ROOT / "README.md"
TIMES = COURSE_ROOT / "benchmarks" / "results" / "course-times.json"
START, END = "<!-- agenda:start -->", "<!-- agenda:end -->"


class Entry(NamedTuple):
    id: str
    day: str
    title: str
    kind: str  # "lesson" or "lab"
    data: str
    stem: str

    @property
    def folder(self) -> str:
        return "notebooks" if self.kind == "lesson" else "solutions"


AGENDA: tuple[Entry, ...] = (
    Entry('ML00a', '1', 'Spark Review', 'lesson', 'generated, airbnb', 'ML00a_Spark_Review'),
    Entry('ML00b', '1', 'Delta Lake Review', 'lesson', 'airbnb', 'ML00b_Delta_Lake_Review'),
    Entry('ML00bL', '1', 'Delta Lake Lab', 'lab', 'airbnb', 'ML00bL_Delta_Lake_Lab'),
    Entry('ML01', '1', 'Data Cleansing', 'lesson', 'airbnb raw -> clean Delta', 'ML01_Data_Cleansing'),
    Entry('ML02L', '1', 'Data Exploration Lab', 'lab', 'airbnb clean', 'ML02L_Data_Exploration_Lab'),
    Entry('ML03', '1', 'Linear Regression I', 'lesson', 'airbnb', 'ML03_Linear_Regression_I'),
    Entry('ML03L', '2', 'Linear Regression I Lab', 'lab', 'airbnb', 'ML03L_Linear_Regression_I_Lab'),
    Entry('ML04', '2', 'Linear Regression II', 'lesson', 'airbnb', 'ML04_Linear_Regression_II'),
    Entry('ML04L', '2', 'Linear Regression II Lab', 'lab', 'airbnb', 'ML04L_Linear_Regression_II_Lab'),
    Entry('ML05', '2', 'MLflow Tracking', 'lesson', 'airbnb', 'ML05_MLflow_Tracking'),
    Entry('ML06', '2', 'MLflow Model Registry', 'lesson', 'airbnb', 'ML06_MLflow_Model_Registry'),
    Entry('ML06L', '2', 'MLflow Lab', 'lab', 'airbnb', 'ML06L_MLflow_Lab'),
    Entry('ML07', '3', 'Decision Trees', 'lesson', 'airbnb', 'ML07_Decision_Trees'),
    Entry('ML08', '3', 'Random Forests and Hyperparameter Tuning', 'lesson', 'airbnb', 'ML08_Random_Forests_and_Hyperparameter_Tuning'),
    Entry('ML08L', '3', 'Hyperparameter Tuning Lab', 'lab', 'airbnb', 'ML08L_Hyperparameter_Tuning_Lab'),
    Entry('ML09', '3', 'Hyperopt', 'lesson', 'airbnb', 'ML09_Hyperopt'),
    Entry('ML09L', '4', 'Hyperopt Lab', 'lab', 'airbnb', 'ML09L_Hyperopt_Lab'),
    Entry('ML10', '4', 'MLlib Deployment Options', 'lesson', 'airbnb', 'ML10_MLlib_Deployment_Options'),
    Entry('ML11', '4', 'XGBoost', 'lesson', 'airbnb', 'ML11_XGBoost'),
    Entry('ML12', '4', 'Inference with Pandas UDFs', 'lesson', 'airbnb', 'ML12_Inference_with_Pandas_UDFs'),
    Entry('ML13', '4', 'Training with Pandas UDFs', 'lesson', 'airbnb', 'ML13_Training_with_Pandas_UDFs'),
    Entry('ML14L', '4', 'Pandas UDF Lab', 'lab', 'airbnb', 'ML14L_Pandas_UDF_Lab'),
    Entry('ML15', '4', 'Koalas: the Pandas API on Spark', 'lesson', 'airbnb', 'ML15_Koalas_the_Pandas_API_on_Spark'),
    Entry('ML16', '4', 'Capstone: Recommendations with ALS', 'lesson', 'MovieLens 100K', 'ML16_Capstone_Recommendations_with_ALS'),
    Entry('ML16L', '4', 'Capstone Lab: Jester Jokes', 'lab', 'Jester', 'ML16L_Capstone_Lab_Jester_Jokes'),
    Entry('ML17', '+', 'Streaming Recommendations', 'lesson', 'MovieLens latest-small', 'ML17_Streaming_Recommendations'),
    Entry('ML18', '+', 'Real-Time Analytics with Structured Streaming', 'lesson', 'replayed posts stream', 'ML18_Real_Time_Analytics_with_Structured_Streaming'),
    Entry('ML18L', '+', 'Real-Time Analytics Lab', 'lab', 'replayed posts stream', 'ML18L_Real_Time_Analytics_Lab'),
    Entry('MLE01', 'elective', 'K-Means', 'lesson', 'generated / packaged', 'MLE01_K_Means'),
    Entry('MLE02L', 'elective', 'Logistic Regression Lab', 'lab', 'airbnb', 'MLE02L_Logistic_Regression_Lab'),
    Entry('MLE03', 'elective', 'Time Series Forecasting', 'lesson', 'generated / packaged', 'MLE03_Time_Series_Forecasting'),
    Entry('MLE04', 'elective', 'Isolation Forests for Outlier Detection', 'lesson', 'generated / packaged', 'MLE04_Isolation_Forests_for_Outlier_Detection'),
    Entry('MLE05L', 'elective', 'Collaborative Filtering Lab', 'lab', 'MovieLens latest-small', 'MLE05L_Collaborative_Filtering_Lab'),
    Entry('MLE06', 'elective', 'Joblib and scikit-learn at Scale', 'lesson', 'airbnb', 'MLE06_Joblib_and_scikit_learn_at_Scale'),
    Entry('MLE07', 'elective', 'Best Practices for Spark ML', 'lesson', 'any', 'MLE07_Best_Practices_for_Spark_ML'),
)

BY_STEM = {entry.stem: entry for entry in AGENDA}
BY_ID = {entry.id: entry for entry in AGENDA}


def run_times(times_file: Path = TIMES) -> dict | None:
    """The committed ``make course`` record, or None when there is none."""
    if not times_file.exists():
        return None
    record = json.loads(times_file.read_text(encoding="utf-8"))
    unknown = sorted(set(record["notebooks"]) - set(BY_STEM))
    if unknown:
        raise ValueError(f"{times_file.name}: not in the agenda: {', '.join(unknown)}")
    return record


def readme_table(root: Path = COURSE_ROOT, times_file: Path = TIMES) -> str:
    """The agenda as a Markdown table, linking the notebooks that exist, with each notebook's run
    time when :data:`TIMES` records one."""
    record = run_times(times_file)
    header, rule = "| ID | Day | Notebook | Kind | Data |", "|---|---|---|---|---|"
    if record:
        header, rule = header + " Run |", rule + "--:|"
    lines = [header, rule]
    for entry in AGENDA:
        path = f"{entry.folder}/{entry.stem}.ipynb"
        if not (root / path).exists():
            title = f"{entry.title} *(coming)*"
        elif entry.kind == "lab":
            title = f"[{entry.title}](labs/{entry.stem}.ipynb) ([solution]({path}))"
        else:
            title = f"[{entry.title}]({path})"
        line = f"| {entry.id} | {entry.day} | {title} | {entry.kind} | {entry.data} |"
        if record:
            seconds = record["notebooks"].get(entry.stem)
            line += f" {seconds / 60:.1f} min |" if seconds is not None else " – |"
        lines.append(line)
    if record:
        lines.append("")
        lines.append(f"Run: the notebook's time in one `make course` run ({record['date']}, {record['machine']}, "
                     f"{record['jobs']} notebooks at a time; the whole course {record['wall_seconds'] / 60:.1f} min). "
                     "Teaching takes longer: each lesson is planned for a 45-60 minute slot.")
    return "\n".join(lines)


def readme_section(text: str) -> str:
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    if not match:
        raise ValueError(f"README has no {START} ... {END} section")
    return match.group(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m includes.tools.agenda")
    parser.add_argument("--write", action="store_true", help="update the table in README.md")
    parser.add_argument("--times", type=Path, help="a make course record (build/course-times.json) to commit as "
                        f"{TIMES.relative_to(COURSE_ROOT)}")
    args = parser.parse_args(argv)
    if args.times:
        run_times(args.times)  # refuses a record with notebooks the agenda does not have
        TIMES.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.times, TIMES)
    table = readme_table()
    if not args.write:
        print(table)
        return 0
    text = README.read_text(encoding="utf-8")
    README.write_text(text.replace(readme_section(text), table), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
