"""The bundled offline example business: a small shop with a database, landing files and an API.

Imports: common, project.
"""

from headwater.example.api_server import run_api, serve_api
from headwater.example.changes import DayChanges, TableChanges
from headwater.example.simulator import Shop

__all__ = ["DayChanges", "Shop", "TableChanges", "run_api", "serve_api"]
