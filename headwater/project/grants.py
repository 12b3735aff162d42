"""The `grants:` block of headwater.yaml: three Postgres roles, one per kind of work, and who belongs to them.

    grants:
      loader: {role: headwater_loader, members: [etl]}              # writes raw_* and headwater_ops
      transformer: {role: headwater_transformer, members: [etl], schemas: [staging]}   # reads raw, builds marts
      reader: {role: headwater_reader, members: [metabase, analyst]}   # reads published marts, PII left out

Every key may be left out (`grants: {}` takes the default names and no members). The roles are
NOLOGIN group roles; `members` are existing LOGIN users given membership. `headwater db grants`
creates or updates them (headwater.access.roles); a run then takes the loader role for loads and the
transformer role for dbt and publishing when the database URL's user may SET ROLE to them
(headwater.access.run_roles), and gives the reader the published mart columns after each publish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.project.scalars import found, text

# Role names go into `-crole=<name>` connection options and SQL unquoted by Postgres' folding rules:
# keep them plain lower-case identifiers, as Postgres would fold them anyway.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
KINDS = ("loader", "transformer", "reader")
DEFAULT_ROLES = {kind: f"headwater_{kind}" for kind in KINDS}
ROLE_KEYS = {"loader": ("role", "members"), "transformer": ("role", "members", "schemas"),
             "reader": ("role", "members")}
# Schemas dbt builds into besides the published marts and their audit schemas.
DEFAULT_TRANSFORM_SCHEMAS = ("staging",)
RESERVED_SCHEMAS = ("headwater_ops", "public", "information_schema")


@dataclass(frozen=True)
class RoleConfig:
    name: str
    members: tuple[str, ...] = ()  # existing LOGIN users granted membership


@dataclass(frozen=True)
class GrantsConfig:
    loader: RoleConfig = RoleConfig(DEFAULT_ROLES["loader"])
    transformer: RoleConfig = RoleConfig(DEFAULT_ROLES["transformer"])
    reader: RoleConfig = RoleConfig(DEFAULT_ROLES["reader"])
    transform_schemas: tuple[str, ...] = DEFAULT_TRANSFORM_SCHEMAS

    @property
    def roles(self) -> tuple[RoleConfig, RoleConfig, RoleConfig]:
        return self.loader, self.transformer, self.reader

    def by_kind(self) -> dict[str, RoleConfig]:
        return dict(zip(KINDS, self.roles, strict=True))


def parse_grants(written: bool, raw: Any, problems: list[Problem]) -> GrantsConfig | None:
    """None when headwater.yaml has no `grants:` key; `grants:` with no value takes every default."""
    if not written:
        return None
    if raw is None:
        return GrantsConfig()
    if not isinstance(raw, dict):
        problems.append(Problem(("grants",), f"must be a mapping, e.g. {{reader: {{members: [analyst]}}}} or {{}} "
                                             f"for the default roles; got {found(raw)}"))
        return None
    for key in raw:
        if key not in KINDS:
            problems.append(Problem(("grants", key), f"unknown key; allowed: {', '.join(KINDS)}"))
    roles = {kind: _role(kind, raw.get(kind), problems) for kind in KINDS}
    _distinct(roles, problems)
    schemas = DEFAULT_TRANSFORM_SCHEMAS
    transformer = raw.get("transformer")
    if isinstance(transformer, dict) and "schemas" in transformer:
        schemas = _schemas(transformer["schemas"], ("grants", "transformer", "schemas"), problems)
    return GrantsConfig(loader=roles["loader"], transformer=roles["transformer"], reader=roles["reader"],
                        transform_schemas=schemas)


def _role(kind: str, raw: Any, problems: list[Problem]) -> RoleConfig:
    where: KeyPath = ("grants", kind)
    default = RoleConfig(DEFAULT_ROLES[kind])
    if raw is None:
        return default
    if not isinstance(raw, dict):
        problems.append(Problem(where, f"must be a mapping, e.g. {{role: {DEFAULT_ROLES[kind]}, members: [etl]}}; "
                                       f"got {found(raw)}"))
        return default
    for key in raw:
        if key not in ROLE_KEYS[kind]:
            problems.append(Problem((*where, key), f"unknown key; allowed: {', '.join(ROLE_KEYS[kind])}"))
    name = raw.get("role", default.name)
    if name != default.name:
        name = text(name, (*where, "role"), problems, "a role name")
        if name is not None and not ROLE_NAME.match(name):
            problems.append(Problem((*where, "role"), f"{name!r} is not a plain role name: use lower-case letters, "
                                                      "digits and _ (at most 63), starting with a letter or _"))
            name = None
    members = _names(raw.get("members", []), (*where, "members"), problems, "a login user name")
    return RoleConfig(name or default.name, members)


def _names(raw: Any, where: KeyPath, problems: list[Problem], what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(Problem(where, f"expected a list of names, e.g. [etl, analyst], got {found(raw)}"))
        return ()
    names = [text(item, (*where, index), problems, what) for index, item in enumerate(raw)]
    return tuple(dict.fromkeys(name for name in names if name))


def _schemas(raw: Any, where: KeyPath, problems: list[Problem]) -> tuple[str, ...]:
    names = _names(raw, where, problems, "a schema name")
    for index, name in enumerate(names):
        if name.startswith(("raw_", "pg_")) or name in RESERVED_SCHEMAS:
            problems.append(Problem((*where, index), f"{name!r} is not a schema dbt builds into: the transformer "
                                                     "role is given the schemas of the dbt project (e.g. staging)"))
    return names


def _distinct(roles: dict[str, RoleConfig], problems: list[Problem]) -> None:
    """Three roles with three names, none of them a member of another through `members:`."""
    seen: dict[str, str] = {}
    for kind, role in roles.items():
        if role.name in seen:
            problems.append(Problem(("grants", kind, "role"), f"{role.name!r} is already the {seen[role.name]} role; "
                                                              "each kind of work needs a role of its own"))
        seen.setdefault(role.name, kind)
    names = {role.name for role in roles.values()}
    for kind, role in roles.items():
        for index, member in enumerate(role.members):
            if member in names:
                problems.append(Problem(("grants", kind, "members", index),
                                        f"{member!r} is one of the three roles; members are login users"))
