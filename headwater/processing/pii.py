"""The `pii` step: drop, mask or hash columns holding personal data before they reach the database.

`hash` is HMAC-SHA256 keyed with a salt that must come from a secret (`${PII_SALT}`), so equal
values still join across tables while nobody without the salt can recompute them from a list of
known e-mail addresses. `mask` keeps enough shape to recognise a value: the domain of an e-mail
address, the last four characters of anything else.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import polars as pl

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.processing.frames import require_columns
from headwater.processing.options import Context, column_name, mapping
from headwater.processing.spec import StepFunction

MODES = ("drop", "mask", "hash")
# Values with fewer characters than this are masked completely: showing four of them would show too much.
MASK_KEEP_FROM = 8
ALPHANUMERIC = r"[\p{L}\p{N}]"


def mode_of(spec: Any) -> tuple[str | None, Any]:
    """('hash', {salt: ...}) from `{hash: {salt: ...}}`, ('mask', None) from `mask`."""
    if isinstance(spec, str):
        return spec, None
    if isinstance(spec, dict) and len(spec) == 1:
        return next(iter(spec.items()))
    return None, None


def check(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    example = '{email: {hash: {salt: "${PII_SALT}"}}, phone: mask, ssn: drop}'
    for column, spec in (mapping(options, where, problems, example) or {}).items():
        here = (*where, column)
        if not column_name(column, here, problems):
            continue
        mode, settings = mode_of(spec)
        if mode not in MODES:
            problems.append(Problem(here, f"unknown pii mode {spec!r}; allowed: {', '.join(MODES)}"))
        elif mode == "hash":
            _check_salt(settings, (*here, "hash"), problems, context)
        elif settings is not None:
            problems.append(Problem((*here, mode), f"{mode} takes no options; write `{column}: {mode}`"))


def _check_salt(settings: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    salt = settings.get("salt") if isinstance(settings, dict) else None
    if not isinstance(settings, dict) or set(settings) != {"salt"} or not isinstance(salt, str):
        problems.append(Problem(where, 'hash needs exactly a salt from a secret: {hash: {salt: "${PII_SALT}"}}'))
        return
    if context.resolved:
        if not salt:
            problems.append(Problem((*where, "salt"), "the salt is empty; set the variable it references"))
        return
    references = context.variables.references_in(salt)
    if not references:
        problems.append(
            Problem(
                (*where, "salt"),
                "the salt is a secret; do not write it in the file, reference it as ${PII_SALT} and set that "
                f"in the environment or {context.variables.secrets_file}",
            )
        )


def hashed(values: pl.Series, salt: str) -> pl.Series:
    """HMAC-SHA256 hex digest of every value (nulls stay null); each distinct value is hashed once."""
    text = values.cast(pl.String)
    distinct = text.drop_nulls().unique()
    key = salt.encode()
    digests = [hmac.new(key, value.encode(), hashlib.sha256).hexdigest() for value in distinct.to_list()]
    return text.replace_strict(distinct, pl.Series(digests, dtype=pl.String), default=None, return_dtype=pl.String)


def masked(value: pl.Expr) -> pl.Expr:
    """`j*******@example.com` for e-mail addresses; `+** *** ***4567` for anything else (short values: all `*`)."""
    text = value.cast(pl.String)
    local = text.str.extract(r"^([^@]+)@", 1)
    domain = text.str.extract(r"(@.*)$", 1)
    email = pl.concat_str(local.str.head(1), local.str.slice(1).str.replace_all(".", "*"), domain)
    length = text.str.len_chars()
    head = text.str.head(length - 4).str.replace_all(ALPHANUMERIC, "*")
    other = (
        pl.when(length < MASK_KEEP_FROM)
        .then(text.str.replace_all(ALPHANUMERIC, "*"))
        .otherwise(pl.concat_str(head, text.str.tail(4)))
    )
    return pl.when(local.is_not_null()).then(email).otherwise(other)


def masked_text(text: str) -> str:
    """Every letter and digit of a text as `*`: its shape stays (quotes, separators, spaces, length), no value does."""
    return pl.select(pl.lit(text, dtype=pl.String).str.replace_all(ALPHANUMERIC, "*")).item()


def salt_fingerprint(salt: str) -> str:
    """Eight hex digits that tell one salt from another without revealing it: values hashed with the salt
    they name can be compared with values hashed now."""
    return hmac.new(salt.encode(), b"headwater pii salt", hashlib.sha256).hexdigest()[:8]


def treated_value(value: Any, mode: str, salt: str | None = None) -> Any:
    """One value as the step makes it: hashed or masked text (None stays None); `drop` has no value to give."""
    if mode not in ("hash", "mask"):
        raise ValueError(f"a {mode!r} treatment leaves no value")
    if value is None:
        return None
    return pii_step_values(pl.DataFrame({"value": [value]}, strict=False), "value", mode, salt).item()


def pii_step_values(frame: pl.DataFrame, column: str, mode: str, salt: str | None = None) -> pl.Series:
    """What the step makes of one column of ``frame`` (hash or mask), exactly as it does when rows load."""
    if mode == "hash":
        return hashed(frame.get_column(column), salt or "")
    return frame.select(masked(pl.col(column)).alias(column)).get_column(column)


def build(options: dict, context: Context) -> StepFunction:
    plan = {column: mode_of(spec) for column, spec in options.items()}

    def pii(frame: pl.DataFrame):
        require_columns(frame, plan, "pii")
        replaced = [pii_step_values(frame, column, mode, settings["salt"] if mode == "hash" else None)
                    for column, (mode, settings) in plan.items() if mode in ("mask", "hash")]
        frame = frame.with_columns(replaced)
        return frame.drop([column for column, (mode, _) in plan.items() if mode == "drop"]), None

    return pii
