"""Headwater: incremental ELT into Postgres with dlt, dbt, Soda and Prefect."""

__version__ = "0.1.0"
