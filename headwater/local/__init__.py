"""What runs on the user's machine: the embedded PostgreSQL, the local stack (`headwater up`: database,
Prefect server and the warm runner that runs `headwater run` without its import cost), and the choice
between the embedded database and $HEADWATER_DATABASE_URL.

Imports: common, postgres.
"""
