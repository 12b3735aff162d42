"""The project's Prefect deployments (`headwater deploy`): which Prefect server they go to (PREFECT_API_URL or
the one of `headwater up`), prefect.yaml read and checked, or one deployment per source and a build deployment
written from headwater.yaml's deploy: block, work pools and the destination's global concurrency limit created,
deployments registered with `prefect deploy --all`, one run started and followed to its final state, a worker
started.

Imports: common, local, project, plugins.
"""
