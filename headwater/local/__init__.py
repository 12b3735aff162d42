"""What runs on the user's machine: the embedded PostgreSQL, the local stack (`headwater up`: database
and Prefect server), and the choice between the embedded database and $HEADWATER_DATABASE_URL.

Imports: common, postgres.
"""
