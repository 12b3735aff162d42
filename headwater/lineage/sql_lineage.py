"""One model's compiled SQL -> the input columns that feed each of its output columns, directly or indirectly.

sqlglot qualifies the query against the columns of its inputs (expanding ``select *``), and
``sqlglot.lineage`` gives, per output column, the tree of projections down to input table columns.
From that tree:

- **direct** inputs are its leaves. The projections along the way are inlined into one expression
  over the inputs (``cast(coalesce(sum(amount), 0) as decimal(12, 2))``): that is the
  transformation, and it tells whether an input only passes through a hashing or masking function
  (``masking``), is aggregated, or only decides a ``CASE WHEN`` / window partition (then the input is
  indirect: it picks the value, it is not the value).
- **indirect** inputs are the columns of ``JOIN ... ON``, ``WHERE``, ``GROUP BY``, ``HAVING``,
  ``QUALIFY``, ``DISTINCT ON`` and ``ORDER BY ... LIMIT`` in every scope (CTE, subquery, the main
  query) the output's value passes through, resolved through CTEs and subqueries to input columns.
  A ``count(*)`` passes through every scope whose rows it counts.

Whatever cannot be traced is returned by name, never dropped: a ``select *`` over a table the
schema does not know, a column of no known table, an input column missing from its table, SQL
sqlglot cannot parse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError
from sqlglot.lineage import Node, lineage, to_node
from sqlglot.optimizer import qualify
from sqlglot.optimizer.scope import Scope, build_scope, find_all_in_scope
from sqlglot.schema import ensure_schema

DIALECT = "postgres"
# Functions whose output no longer shows its input: hashes, and partial masks (left, right, substring,
# overlay, regexp_replace keep a part of the value and hide the rest). Names as sqlglot renders them.
MASKING_FUNCTIONS = frozenset({
    "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "digest", "hmac", "crypt", "hashtext",
    "left", "right", "substring", "substr", "overlay", "regexp_replace", "mask", "translate",
})
IDENTITY, TRANSFORMATION, AGGREGATION = "IDENTITY", "TRANSFORMATION", "AGGREGATION"
JOIN, GROUP_BY, FILTER, SORT, WINDOW, CONDITIONAL = "JOIN", "GROUP_BY", "FILTER", "SORT", "WINDOW", "CONDITIONAL"
# The longest transformation text kept on an edge; a deeply nested model would otherwise repeat itself.
MAX_TRANSFORMATION = 600

InputKey = tuple[str, str, str]  # schema, table, column of a model input
_LEAF, _SUBQUERY = "headwater_leaf", "headwater_subquery"
_WRAPPER = "headwater_wrapper"


@dataclass
class DirectInput:
    subtype: str  # IDENTITY, TRANSFORMATION or AGGREGATION
    masking: bool = False


@dataclass
class ColumnTrace:
    """The inputs of one output column."""

    transformation: str = ""  # the output as an expression over its inputs; empty for a plain copy
    direct: dict[InputKey, DirectInput] = field(default_factory=dict)
    # (input, subtype) -> the clause, e.g. (("staging", "orders", "order_id"), "JOIN") -> "JOIN ON a.id = b.id"
    indirect: dict[tuple[InputKey, str], str] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)


@dataclass
class ModelTrace:
    columns: dict[str, ColumnTrace] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)  # about the whole model


def trace_model(sql: str, tables: dict[tuple[str, str], dict[str, str]], database: str) -> ModelTrace:
    """Trace every output column of ``sql`` (one model's compiled code).

    ``tables`` maps (schema, table) of every known relation to its {column: type}; relations are
    referenced as ``database.schema.table`` in dbt's compiled code.
    """
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warnings (unsupported syntax, unknown scopes) end up in `unresolved`
    try:
        return _Tracer(sql, tables, database).trace()
    except SqlglotError as error:
        return ModelTrace(unresolved=[f"sqlglot could not read the compiled SQL ({_first_line(error)})"])
    except Exception as error:  # a sqlglot corner case must not stop the lineage of every other model
        return ModelTrace(unresolved=[f"sqlglot failed on the compiled SQL ({_first_line(error)})"])
    finally:
        quiet.setLevel(level)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


class _Tracer:
    def __init__(self, sql: str, tables: dict[tuple[str, str], dict[str, str]], database: str):
        self.tables = tables
        mapping: dict = {}
        for (schema, table), columns in tables.items():
            if columns:  # a relation without known columns stays out: its `select *` is reported, not guessed
                mapping.setdefault(schema, {})[table] = dict(columns)
        self.schema = ensure_schema({database: mapping} if mapping else {}, dialect=DIALECT)
        expression = parse_one(sql, dialect=DIALECT)
        if not isinstance(expression, exp.Query):
            raise SqlglotError(f"not a query: {type(expression).__name__}")
        self.expression = qualify.qualify(
            expression, dialect=DIALECT, schema=self.schema, validate_qualify_columns=False, identify=False,
            allow_partial_qualification=True,  # an unknown column is reported by leaf(), not an error here
        )
        self.root = build_scope(self.expression)
        if self.root is None:
            raise SqlglotError("not a select")
        self.scopes = {id(scope.expression): scope for scope in self.root.traverse()}
        self.cache: dict = {}
        self.inlined: dict[int, exp.Expr] = {}
        self.clauses: dict[int, list[tuple[Node, str, str]]] = {}

    def trace(self) -> ModelTrace:
        roots = lineage(None, self.expression, schema=self.schema, dialect=DIALECT, scope=self.root,
                        trim_selects=False, copy=False)
        result = ModelTrace()
        if "*" in roots:  # the top-level select * could not be expanded: name the inputs sqlglot does not know
            leaves = _leaves(roots.pop("*"))
            unknown = [leaf for leaf in leaves if not self.known(leaf.source)] or leaves
            result.unresolved += sorted({self.leaf(leaf)[1] or "select * could not be expanded" for leaf in unknown})
        for name, root in roots.items():
            result.columns[name] = self.trace_column(root)
        return result

    # -- leaves -------------------------------------------------------------------------------------------

    def known(self, source: exp.Expr) -> bool:
        return isinstance(source, exp.Table) and bool(self.tables.get((source.db, source.name)))

    def unknown_because(self, source: exp.Table, table: str) -> str:
        if (source.db, source.name) in self.tables:
            return f"the columns of {table} are not known (it could not be traced, or is not built)"
        return f"{table} is not in the dbt catalog or a raw schema"

    def leaf(self, node: Node) -> tuple[InputKey | None, str | None]:
        """(input column, None), (None, why it cannot be traced), or (None, None) for no input (count(*), 'x')."""
        source, name = node.source, _column_name(node.name)
        if isinstance(source, exp.Table):
            table = ".".join(part for part in (source.db, source.name) if part)
            if name == "*":
                why = "another input is not known" if self.known(source) else self.unknown_because(source, table)
                return None, f"select * from {table} could not be expanded: {why}"
            if not source.db or not self.known(source):
                return None, f"{table}.{name}: {self.unknown_because(source, table)}"
            if name not in self.tables[(source.db, source.name)]:
                return None, f"{table}.{name}: {table} has no column {name}"
            return (source.db, source.name, name), None
        if isinstance(source, exp.Placeholder):
            return None, f"{node.name}: could not be attributed to an input table"
        if name == "*":
            return None, "select * could not be expanded"
        return None, None

    # -- direct inputs and the transformation ---------------------------------------------------------------

    def trace_column(self, root: Node) -> ColumnTrace:
        trace = ColumnTrace()
        expression = self.inline(root)
        occurrences: dict[InputKey, list[tuple[bool, str | None, bool]]] = {}
        for column in [expression] if isinstance(expression, exp.Column) else expression.find_all(exp.Column):
            if _LEAF in column.meta:
                occurrences.setdefault(column.meta[_LEAF], []).append(_position(column, expression))
        for leaf in _leaves(root):
            key, reason = self.leaf(leaf)
            if reason and reason not in trace.unresolved:
                trace.unresolved.append(reason)
            elif key and key not in occurrences:  # a leaf the inlining did not place: keep it, conservatively
                occurrences[key] = [(False, None, False)]
        for key, found in occurrences.items():
            valued = [(masked, aggregated) for masked, condition, aggregated in found if condition is None]
            if not valued:  # only decides a CASE branch or a window: picks the value, is not the value
                trace.indirect[(key, next(condition for _, condition, _ in found))] = _render(expression)
                continue
            subtype = IDENTITY if _is_copy(expression) else (
                AGGREGATION if any(aggregated for _, aggregated in valued) else TRANSFORMATION)
            trace.direct[key] = DirectInput(subtype, masking=all(masked for masked, _ in valued))
        if not _is_copy(expression):
            trace.transformation = _render(expression)
        for scope in self.scopes_passed(root):
            for leaf, subtype, clause in self.clause_inputs(scope):
                key, reason = self.leaf(leaf)
                if key:
                    known = trace.indirect.get((key, subtype))
                    if known is None or clause not in known.split("; "):
                        trace.indirect[(key, subtype)] = f"{known}; {clause}" if known else clause
                elif reason and reason not in trace.unresolved:
                    trace.unresolved.append(reason)
        return trace

    def inline(self, node: Node) -> exp.Expr:
        """The node's value as one expression over input columns (leaves carry their InputKey in meta)."""
        cached = self.inlined.get(id(node))
        if cached is None:
            cached = self.inlined[id(node)] = self._inline(node)
        return cached.copy()

    def _inline(self, node: Node) -> exp.Expr:
        if not node.downstream:
            key, reason = self.leaf(node)
            if key:
                column = exp.column(key[2], table=key[1])
                column.meta[_LEAF] = key
                return column
            if reason or isinstance(node.expression, exp.Table):
                return exp.column(_column_name(node.name) or "?")
            return _unalias(node.expression).copy()  # count(*), a literal: no input column
        if isinstance(node.source, exp.SetOperation) and node.name == type(node.source).__name__.upper():
            return _wrapper(node.name.lower(), [self.inline(child) for child in node.downstream])
        expression = _unalias(node.expression)
        by_column: dict[tuple[str, str], Node] = {}
        by_query: dict[int, list[Node]] = {}
        for child in node.downstream:
            if id(child.source) in self.scopes and "." not in child.name and child.source is not node.source:
                by_query.setdefault(id(child.source), []).append(child)  # a scalar subquery's projection
            else:
                by_column.setdefault(_column_key(child.name), child)
        for query in expression.find_all(*exp.UNWRAPPED_QUERIES):
            query.meta[_SUBQUERY] = id(query)

        def substitute(item: exp.Expr) -> exp.Expr:
            if isinstance(item, exp.Column):
                child = by_column.get((item.table, item.name))
                if child is not None:
                    return self.inline(child)
                branches = self.set_operation_branches(node, item.table, by_query)
                if branches:  # a column of a UNION CTE: sqlglot attaches one child per branch
                    return _wrapper("union", [self.inline(branch) for branch in branches])
                return item
            if isinstance(item, exp.UNWRAPPED_QUERIES) and item.meta.get(_SUBQUERY) in by_query:
                children = by_query[item.meta[_SUBQUERY]]
                if len(children) == 1:
                    return self.inline(children[0])
                return _wrapper("subquery", [self.inline(child) for child in children])
            return item

        return expression.transform(substitute)

    def set_operation_branches(self, node: Node, table: str, by_query: dict[int, list[Node]]) -> list[Node]:
        scope = self.scopes.get(id(node.source))
        source = scope.sources.get(table) if scope is not None and table else None
        if not isinstance(source, Scope) or not isinstance(source.expression, exp.SetOperation):
            return []
        branches = {id(select) for select in source.expression.find_all(exp.Select)}
        return [child for key, children in by_query.items() if key in branches for child in children]

    # -- indirect inputs ----------------------------------------------------------------------------------

    def scopes_passed(self, root: Node) -> list[Scope]:
        """Every scope the column's value is computed in, and, for count(*)-like values, the scopes counted."""
        found: dict[int, Scope] = {}
        for node in root.walk():
            scope = self.scopes.get(id(node.source))
            if scope is None or id(scope.expression) in found:
                continue
            found[id(scope.expression)] = scope
            if not node.downstream and _counts_rows(node.expression):
                for counted in _row_sources(scope):
                    found.setdefault(id(counted.expression), counted)
        return list(found.values())

    def clause_inputs(self, scope: Scope) -> list[tuple[Node, str, str]]:
        """(leaf, subtype, clause) for every column that decides which rows or groups the scope yields."""
        if id(scope.expression) in self.clauses:
            return self.clauses[id(scope.expression)]
        select = scope.expression
        found: list[tuple[Node, str, str]] = []
        self.clauses[id(scope.expression)] = found
        if not isinstance(select, exp.Select):
            return found
        for subtype, clause, text in _clauses(select):
            for column in find_all_in_scope(clause, exp.Column):
                found += [(leaf, subtype, text) for leaf in self.resolve(scope, column)]
            for query in clause.find_all(*exp.UNWRAPPED_QUERIES):
                inner = self.scopes.get(id(query))
                if inner is None or inner is scope:
                    continue
                for name in query.named_selects:  # `x in (select y ...)`: y decides the rows too
                    found += [(leaf, subtype, text) for leaf in _leaves(self.node(name, inner))]
                found += [(leaf, subtype, text) for leaf, _, _ in self.clause_inputs(inner)]
        return found

    def resolve(self, scope: Scope, column: exp.Column) -> list[Node]:
        """The input-table leaves behind ``column`` as written in ``scope`` (outer scopes for correlated ones)."""
        table, current = column.table, scope
        while current is not None:
            source = current.sources.get(table) if table else None
            if source is not None:
                if isinstance(source, Scope):
                    return _leaves(self.node(column.name, source, scope_name=table))
                return [Node(name=column.sql(comments=False), source=source, expression=source)]
            current = current.parent
        if not table and column.name in getattr(scope.expression, "named_selects", ()):  # ORDER BY an output alias
            return _leaves(self.node(column.name, scope))
        return [Node(name=column.sql(comments=False), source=exp.Placeholder(), expression=exp.Placeholder())]

    def node(self, column: str, scope: Scope, scope_name: str | None = None) -> Node:
        return to_node(column, scope, DIALECT, self.schema, scope_name=scope_name, trim_selects=False,
                       _cache=self.cache)


def _clauses(select: exp.Select) -> list[tuple[str, exp.Expr, str]]:
    """(subtype, clause, clause as SQL) of the clauses that pick rows or groups."""
    clauses = []
    for join in select.args.get("joins") or []:
        if join.args.get("on") is not None:
            clauses.append((JOIN, join.args["on"], f"JOIN ON {join.args['on'].sql(DIALECT)}"))
        for name in join.args.get("using") or []:  # qualify rewrites USING to ON; kept for safety
            column = exp.column(name.name, table=join.alias_or_name)
            clauses.append((JOIN, column, f"JOIN USING ({name.name})"))
    for key, subtype, label in (("where", FILTER, "WHERE"), ("group", GROUP_BY, "GROUP BY"),
                                ("having", FILTER, "HAVING"), ("qualify", FILTER, "QUALIFY")):
        clause = select.args.get(key)
        if clause is not None:
            body = clause.this if key in ("where", "having", "qualify") else clause
            text = body.sql(DIALECT) if key != "group" else ", ".join(e.sql(DIALECT) for e in clause.expressions)
            clauses.append((subtype, clause, f"{label} {text}"))
    distinct = select.args.get("distinct")
    if distinct is not None and distinct.args.get("on") is not None:
        clauses.append((GROUP_BY, distinct.args["on"], f"DISTINCT ON {distinct.args['on'].sql(DIALECT)}"))
    order = select.args.get("order")
    if order is not None and (select.args.get("limit") is not None or select.args.get("distinct") is not None):
        clauses.append((SORT, order, order.sql(DIALECT)))
    return clauses


def _leaves(node: Node) -> list[Node]:
    return [item for item in node.walk() if not item.downstream]


def _column_name(name: str) -> str:
    try:
        return exp.to_column(name).name
    except (SqlglotError, ValueError):
        return name.rsplit(".", 1)[-1].strip('"')


def _column_key(name: str) -> tuple[str, str]:
    try:
        column = exp.to_column(name)
        return (column.table, column.name) if isinstance(column, exp.Column) else ("", column.name)
    except (SqlglotError, ValueError):
        table, _, column = name.rpartition(".")
        return table.strip('"'), column.strip('"')


def _unalias(expression: exp.Expr) -> exp.Expr:
    return expression.this if isinstance(expression, exp.Alias) else expression


def _function_name(function: exp.Func) -> str:
    if isinstance(function, exp.Anonymous):
        return str(function.name).lower()
    return function.sql(DIALECT).split("(", 1)[0].strip().lower()


def _position(column: exp.Column, root: exp.Expr) -> tuple[bool, str | None, bool]:
    """(masked, condition subtype or None, aggregated) of one occurrence of an input in the inlined expression."""
    masked, condition, aggregated = False, None, False
    child, parent = column, column.parent
    while parent is not None:
        if isinstance(parent, exp.Func) and not isinstance(parent, (exp.If, exp.Case)) and not _is_wrapper(parent):
            masked = masked or _function_name(parent) in MASKING_FUNCTIONS
            # An aggregate over rows; the same function over a window is a per-row transformation.
            aggregated = aggregated or (isinstance(parent, exp.AggFunc) and not isinstance(parent.parent, exp.Window))
        if condition is None:
            if isinstance(parent, exp.If) and child is parent.args.get("this"):
                condition = CONDITIONAL  # WHEN <condition>
            elif isinstance(parent, exp.Case) and child is parent.args.get("this"):
                condition = CONDITIONAL  # CASE <operand> WHEN ...
            elif isinstance(parent, exp.Window) and child is not parent.this:
                condition = WINDOW  # PARTITION BY / ORDER BY
            elif isinstance(parent, exp.Filter) and child is not parent.this:
                condition = CONDITIONAL  # agg(...) FILTER (WHERE ...)
        if parent is root:
            break
        child, parent = parent, parent.parent
    return masked, condition, aggregated


def _wrapper(name: str, values: list[exp.Expr]) -> exp.Expr:
    wrapper = exp.Anonymous(this=name, expressions=values)
    wrapper.meta[_WRAPPER] = True  # inline()'s own, not a function of the model
    return wrapper


def _is_wrapper(expression: exp.Expr) -> bool:
    """The stand-ins inline() puts where a value is one of several (UNION branches, a multi-column subquery)."""
    return isinstance(expression, exp.Anonymous) and expression.meta.get(_WRAPPER, False)


def _is_copy(expression: exp.Expr) -> bool:
    """A plain column, or a UNION of plain columns: the value is copied, not transformed."""
    if isinstance(expression, exp.Column):
        return True
    return _is_wrapper(expression) and all(_is_copy(item) for item in expression.expressions)


def _counts_rows(expression: exp.Expr) -> bool:
    """count(*), or any aggregate without an input column: its value depends on which rows there are."""
    return any(not list(agg.find_all(exp.Column)) for agg in expression.find_all(exp.AggFunc))


def _row_sources(scope: Scope) -> list[Scope]:
    """The scopes (CTEs, subqueries) whose rows ``scope`` reads, all the way down."""
    found, stack = [], [scope]
    while stack:
        for _, source in stack.pop().selected_sources.values():
            if isinstance(source, Scope) and source not in found:
                found.append(source)
                stack.append(source)
    return found


def _render(expression: exp.Expr) -> str:
    """The inlined expression as SQL; input columns named bare, or table.column where several tables feed it."""
    keys = {column.meta[_LEAF] for column in expression.find_all(exp.Column) if _LEAF in column.meta}
    qualified = len({key[:2] for key in keys}) > 1

    def name(item: exp.Expr) -> exp.Expr:
        if isinstance(item, exp.Column) and _LEAF in item.meta:
            schema, table, column = item.meta[_LEAF]
            return exp.column(column, table=table if qualified else None)
        return item

    return _short(expression.transform(name))


def _short(expression: exp.Expr) -> str:
    text = expression.sql(DIALECT, normalize_functions="lower")
    return text if len(text) <= MAX_TRANSFORMATION else text[: MAX_TRANSFORMATION - 1] + "…"
