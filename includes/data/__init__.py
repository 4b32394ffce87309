"""The datasets: the installer (``python -m includes.data.datasets``) and one reader module per dataset."""
