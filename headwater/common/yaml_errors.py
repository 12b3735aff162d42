"""YAML syntax errors in plain words: where to look (line and column, 1-based) and what to change.

PyYAML reports where its parser gave up, in its own terms ("expected <block end>, but found
'<block mapping start>'"). The usual causes in a config file are few: a tab, an unclosed quote or
bracket, a key indented out of line, a `: ` inside a plain value. Each is recognised here and
pointed at the spot to fix, which for an unclosed quote or bracket is where it opens.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class SyntaxProblem:
    line: int | None
    column: int | None
    message: str  # says what is wrong and what to do


def explain(error: yaml.YAMLError, text: str) -> SyntaxProblem:
    """What ``error``, raised while reading ``text``, means for the person editing the file."""
    if isinstance(error, yaml.reader.ReaderError):
        return _bad_character(error, text)
    lines = text.splitlines()
    problem = str(getattr(error, "problem", "") or error)
    context = str(getattr(error, "context", "") or "")
    mark, opened = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)

    quote = _unclosed_quote(text, mark)
    if quote is not None:
        return quote
    if "'\\t'" in problem:
        return _at(mark, "a tab character, where YAML allows only spaces; replace the tab with spaces")
    if problem == "found unexpected end of stream" and "quoted scalar" in context and opened is not None:
        symbol = _char(lines, opened)
        return _at(opened, f"the quoted value that starts here is never closed; add the closing {symbol}")
    if "escape character" in problem:
        return _at(mark, f"{problem.removeprefix('found ')} in double quotes; for text with backslashes use single "
                         "quotes ('C:\\data', '^\\d+$') or double each backslash")
    if "flow" in context and opened is not None:
        bracket = _char(lines, opened)
        if bracket not in "[{":  # PyYAML names the end of the file: find the bracket left open before it
            opened = _open_bracket(lines) or opened
            bracket = _char(lines, opened)
        closing = {"{": "}", "[": "]"}.get(bracket, "the closing bracket")
        if "<stream end>" in problem:
            return _at(opened, f"the {bracket} that starts here is never closed; add {closing}")
        return _at(mark, f"{problem.replace('got', 'found')}, inside the {bracket} at line {opened.line + 1}, "
                         f"column {opened.column + 1}; separate its items with `,` and close it with {closing}")
    if problem == "mapping values are not allowed here":
        return _colon_in_value(lines, mark)
    if "could not find expected ':'" in problem and opened is not None:
        return _at(opened, "a key without `:`; write `key: value`, or quote the text if it is a value")
    if problem.startswith("expected <block end>") and mark is not None:
        if problem.endswith("'-'"):
            return _at(mark, "a list item among the keys of a mapping; put the list under a key of its own "
                             "(`key:` and, below it, `  - item`)")
        return _at(mark, _indentation(lines, mark))
    if problem.startswith("found duplicate key"):
        key_and_first = problem.removeprefix("found duplicate key ")
        return _at(mark, f"the key {key_and_first} appears twice in one mapping; keep one, with everything "
                         "that belongs under it")
    if problem.startswith("found undefined alias"):
        name = problem.rsplit(" ", 1)[-1].strip("'")
        return _at(mark, f"*{name} refers to no &{name} above it; define the anchor first, or remove the *")
    if "could not determine a constructor for the tag" in problem:
        tag = problem.rsplit(" ", 1)[-1].strip("'").replace("tag:yaml.org,2002:", "!!")
        return _at(mark, f"unknown tag {tag}; remove it: headwater.yaml holds plain values only")
    where = f" ({context} at line {opened.line + 1}, column {opened.column + 1})" if opened is not None else ""
    return _at(mark, f"{problem}{where}; check the quotes, colons and indentation (spaces only) here")


def _bad_character(error: yaml.reader.ReaderError, text: str) -> SyntaxProblem:
    """A control character YAML refuses (PyYAML names only its position in the whole text)."""
    position = error.position
    line, column = text.count("\n", 0, position) + 1, position - (text.rfind("\n", 0, position) + 1) + 1
    code = error.character if isinstance(error.character, int) else ord(error.character)
    return SyntaxProblem(line, column, f"not valid YAML: the control character U+{code:04X}, which YAML does not "
                                       "allow in a file; remove it (is this a text file?)")


def _at(mark, message: str) -> SyntaxProblem:
    if mark is None:
        return SyntaxProblem(None, None, f"not valid YAML: {message}")
    return SyntaxProblem(mark.line + 1, mark.column + 1, f"not valid YAML: {message}")


@dataclass(frozen=True)
class _Mark:
    line: int  # 0-based, like PyYAML's marks
    column: int


def _open_bracket(lines: list[str]) -> _Mark | None:
    """The last `[` or `{` still open at the end of the text (quotes and comments skipped)."""
    stack: list[_Mark] = []
    for number, line in enumerate(lines):
        quote = None
        for column, char in enumerate(line):
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (column == 0 or line[column - 1] in " \t"):
                break
            elif char in "[{":
                stack.append(_Mark(number, column))
            elif char in "]}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _char(lines: list[str], mark) -> str:
    line = lines[mark.line] if mark.line < len(lines) else ""
    return line[mark.column] if mark.column < len(line) else '"'


def _unclosed_quote(text: str, mark) -> SyntaxProblem | None:
    """A quote left open on one line closes at the next quote, lines later, and the error comes after that.

    A quoted value that runs over lines and ends on the line where the parser failed is almost always
    such a quote: point at where it opens.
    """
    if mark is None:
        return None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if (isinstance(token, yaml.ScalarToken) and token.style in ('"', "'")
                    and token.start_mark.line < token.end_mark.line == mark.line):
                start, end = token.start_mark, token.end_mark
                return _at(start, f"the quoted value that starts here runs on to line {end.line + 1}, column "
                                  f"{end.column}; add the closing {token.style} on line {start.line + 1}")
    except yaml.YAMLError:  # the tokens up to the error were seen
        pass
    return None


def _line_start(mark, line: str, number: int | None = None):
    """A mark at the first character of ``line`` (index ``number``, by default the mark's own line)."""
    return yaml.Mark(mark.name, 0, mark.line if number is None else number, _indent(line), None, None)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _previous(lines: list[str], number: int) -> int | None:
    """The index of the nearest line above ``number`` that holds YAML (not blank, not a comment)."""
    for index in range(min(number, len(lines)) - 1, -1, -1):
        if lines[index].strip() and not lines[index].lstrip().startswith("#"):
            return index
    return None


def _indentation(lines: list[str], mark) -> str:
    above = _previous(lines, mark.line)
    here = _indent(lines[mark.line]) if mark.line < len(lines) else mark.column
    if above is None:
        return "this line's indentation matches no key above it; line it up with the keys it belongs with"
    return (f"this line is indented {here} spaces, which lines up with no key above it (line {above + 1} has "
            f"{_indent(lines[above])}); indent it like the keys it belongs with")


def _colon_in_value(lines: list[str], mark) -> SyntaxProblem:
    """A `:` inside a plain value: a key above it without its colon, a line indented too far, or a `: ` in a value."""
    above = _previous(lines, mark.line)
    line = lines[mark.line] if mark.line < len(lines) else ""
    if above is not None:
        previous = lines[above]
        if ":" not in previous and not previous.lstrip().startswith("-"):
            return _at(_line_start(mark, previous, above), f"this key has no `:`, so YAML reads it and line "
                                                           f"{mark.line + 1} as one value; end the key with `:`")
        value = previous.split(":", 1)[1].strip()
        if _indent(line) > _indent(previous) and value and not value.startswith("#"):
            return _at(_line_start(mark, line), f"this line is indented more than the key above it ({_indent(line)} "
                                                f"spaces, line {above + 1} has {_indent(previous)}), so YAML reads it "
                                                "as part of that key's value; line it up with that key")
    return _at(mark, "a `: ` inside a value; quote the value, e.g. \"a: b\"")
