"""The project's Prefect deployments (`headwater deploy`): which Prefect server they go to (PREFECT_API_URL or
the one of `headwater up`), prefect.yaml read and checked, work pools created, deployments registered with
`prefect deploy --all`, one run started and followed to its final state, a worker started.

Imports: common, local.
"""
