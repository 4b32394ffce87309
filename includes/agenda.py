"""The course agenda (AGENDA.md): every notebook's ID, day, title, kind and file stem.

Lessons live in notebooks/<stem>.ipynb; labs in solutions/<stem>.ipynb (complete) and
labs/<stem>.ipynb (generated). Names are fixed: tests check every notebook against this table.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    id: str
    day: str
    title: str
    kind: str  # "lesson" or "lab"
    stem: str

    @property
    def folder(self) -> str:
        return "notebooks" if self.kind == "lesson" else "solutions"


AGENDA: tuple[Entry, ...] = (
    Entry('ML00a', '1', 'Spark Review', 'lesson', 'ML00a_Spark_Review'),
    Entry('ML00b', '1', 'Delta Lake Review', 'lesson', 'ML00b_Delta_Lake_Review'),
    Entry('ML00bL', '1', 'Delta Lake Lab', 'lab', 'ML00bL_Delta_Lake_Lab'),
    Entry('ML01', '1', 'Data Cleansing', 'lesson', 'ML01_Data_Cleansing'),
    Entry('ML02L', '1', 'Data Exploration Lab', 'lab', 'ML02L_Data_Exploration_Lab'),
    Entry('ML03', '1', 'Linear Regression I', 'lesson', 'ML03_Linear_Regression_I'),
    Entry('ML03L', '2', 'Linear Regression I Lab', 'lab', 'ML03L_Linear_Regression_I_Lab'),
    Entry('ML04', '2', 'Linear Regression II', 'lesson', 'ML04_Linear_Regression_II'),
    Entry('ML04L', '2', 'Linear Regression II Lab', 'lab', 'ML04L_Linear_Regression_II_Lab'),
    Entry('ML05', '2', 'MLflow Tracking', 'lesson', 'ML05_MLflow_Tracking'),
    Entry('ML06', '2', 'MLflow Model Registry', 'lesson', 'ML06_MLflow_Model_Registry'),
    Entry('ML06L', '2', 'MLflow Lab', 'lab', 'ML06L_MLflow_Lab'),
    Entry('ML07', '3', 'Decision Trees', 'lesson', 'ML07_Decision_Trees'),
    Entry('ML08', '3', 'Random Forests and Hyperparameter Tuning', 'lesson', 'ML08_Random_Forests_and_Hyperparameter_Tuning'),
    Entry('ML08L', '3', 'Hyperparameter Tuning Lab', 'lab', 'ML08L_Hyperparameter_Tuning_Lab'),
    Entry('ML09', '3', 'Hyperopt', 'lesson', 'ML09_Hyperopt'),
    Entry('ML09L', '4', 'Hyperopt Lab', 'lab', 'ML09L_Hyperopt_Lab'),
    Entry('ML10', '4', 'MLlib Deployment Options', 'lesson', 'ML10_MLlib_Deployment_Options'),
    Entry('ML11', '4', 'XGBoost', 'lesson', 'ML11_XGBoost'),
    Entry('ML12', '4', 'Inference with Pandas UDFs', 'lesson', 'ML12_Inference_with_Pandas_UDFs'),
    Entry('ML13', '4', 'Training with Pandas UDFs', 'lesson', 'ML13_Training_with_Pandas_UDFs'),
    Entry('ML14L', '4', 'Pandas UDF Lab', 'lab', 'ML14L_Pandas_UDF_Lab'),
    Entry('ML15', '4', 'Koalas: the Pandas API on Spark', 'lesson', 'ML15_Koalas_the_Pandas_API_on_Spark'),
    Entry('ML16', '4', 'Capstone: Recommendations with ALS', 'lesson', 'ML16_Capstone_Recommendations_with_ALS'),
    Entry('ML16L', '4', 'Capstone Lab: Jester Jokes', 'lab', 'ML16L_Capstone_Lab_Jester_Jokes'),
    Entry('ML17', '+', 'Streaming Recommendations', 'lesson', 'ML17_Streaming_Recommendations'),
    Entry('ML18', '+', 'Real-Time Analytics with Structured Streaming', 'lesson', 'ML18_Real_Time_Analytics_with_Structured_Streaming'),
    Entry('ML18L', '+', 'Real-Time Analytics Lab', 'lab', 'ML18L_Real_Time_Analytics_Lab'),
    Entry('MLE01', 'elective', 'K-Means', 'lesson', 'MLE01_K_Means'),
    Entry('MLE02L', 'elective', 'Logistic Regression Lab', 'lab', 'MLE02L_Logistic_Regression_Lab'),
    Entry('MLE03', 'elective', 'Time Series Forecasting', 'lesson', 'MLE03_Time_Series_Forecasting'),
    Entry('MLE04', 'elective', 'Isolation Forests for Outlier Detection', 'lesson', 'MLE04_Isolation_Forests_for_Outlier_Detection'),
    Entry('MLE05L', 'elective', 'Collaborative Filtering Lab', 'lab', 'MLE05L_Collaborative_Filtering_Lab'),
    Entry('MLE06', 'elective', 'Joblib and scikit-learn at Scale', 'lesson', 'MLE06_Joblib_and_scikit_learn_at_Scale'),
    Entry('MLE07', 'elective', 'Best Practices for Spark ML', 'lesson', 'MLE07_Best_Practices_for_Spark_ML'),
)

BY_STEM = {entry.stem: entry for entry in AGENDA}
BY_ID = {entry.id: entry for entry in AGENDA}
