"""Tokenizer and parser of the formula language (see ``formula`` for the grammar)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from energytree.errors import FormulaError
from energytree.formulaterms import (
    DATE_FIELDS,
    FUNCTIONS,
    MAX_ARGS,
    Binary,
    Call,
    Cond,
    EvalFailure,
    Exists,
    Name,
    Num,
    Term,
    Unary,
    canonical_name,
)

__all__ = [
    "MAX_NESTING",
    "MAX_NODES",
    "MAX_SOURCE_CHARS",
    "MAX_TREE_DEPTH",
    "Parser",
    "located_error",
    "measure",
]

MAX_SOURCE_CHARS = 2000
MAX_NESTING = 64  # parentheses, function arguments, ?: branches, unary operators, exponents
MAX_TREE_DEPTH = 256  # bounds the evaluator's recursion (long `a + b + …` chains count too)
MAX_NODES = 1000



# --- parser -----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%&|^!<>?:(),])",
    re.ASCII,
)
_BINARY_PRECEDENCE: Mapping[str, int] = {
    "||": 1, "&&": 2, "|": 3, "&": 4, "==": 5, "!=": 5,
    "<": 6, "<=": 6, ">": 6, ">=": 6, "+": 7, "-": 7, "*": 8, "/": 8, "%": 8,
}  # fmt: skip


def _excerpt(source: str, position: int) -> str:
    """The formula (at most 80 characters of it) with a caret under `position`."""
    flat = re.sub(r"\s", " ", source)
    start = max(0, min(position - 40, len(flat) - 80))
    lead = "…" if start else ""
    tail = "…" if start + 80 < len(flat) else ""
    return f"  {lead}{flat[start : start + 80]}{tail}\n  {' ' * (len(lead) + position - start)}^"


def located_error(source: str, message: str, position: int | None) -> FormulaError:
    if position is None:
        return FormulaError(message, None)
    located = f"{message} at position {position}\n{_excerpt(source, position)}"
    return FormulaError(located, position, message)


def _tokenize(source: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise EvalFailure(f"unexpected character {source[pos]!r}", pos)
        if match.lastgroup != "space":
            tokens.append((match.lastgroup or "", match.group(), pos))
        pos = match.end()
    tokens.append(("end", "", len(source)))
    return tokens


class Parser:
    """Recursive descent for ?: and unary/primary; binary operators by operator precedence."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.index = 0
        self.nesting = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        kind, got, pos = self.take()
        if got != text or kind != "op":
            raise EvalFailure(f"expected {text!r} but found {_describe(kind, got)}", pos)

    def nested(self, parse: Callable[[], Term], position: int) -> Term:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise EvalFailure(f"formula is nested more than {MAX_NESTING} levels deep", position)
        try:
            return parse()
        finally:
            self.nesting -= 1

    def formula(self) -> Term:
        node = self.ternary()
        kind, text, pos = self.peek()
        if kind != "end":
            raise EvalFailure(f"unexpected {_describe(kind, text)}", pos)
        return node

    def ternary(self) -> Term:
        test = self.binary()
        kind, text, pos = self.peek()
        if (kind, text) != ("op", "?"):
            return test
        self.take()
        then = self.nested(self.ternary, pos)
        self.expect(":")
        return Cond(test, then, self.nested(self.ternary, pos))

    def binary(self) -> Term:
        operands = [self.unary()]
        operators: list[tuple[str, int]] = []
        while (token := self.peek())[0] == "op" and token[1] in _BINARY_PRECEDENCE:
            self.take()
            precedence = _BINARY_PRECEDENCE[token[1]]
            while operators and _BINARY_PRECEDENCE[operators[-1][0]] >= precedence:
                _reduce(operands, operators.pop())
            operators.append((token[1], token[2]))
            operands.append(self.unary())
        while operators:
            _reduce(operands, operators.pop())
        return operands[0]

    def unary(self) -> Term:
        kind, text, pos = self.peek()
        if kind != "op" or text not in "-+!":
            return self.power()
        self.take()
        operand = self.nested(self.unary, pos)
        if text == "-" and isinstance(operand, Num):
            return Num(-operand.value)  # so that "-5" is a constant
        return Unary(text, operand, pos)

    def power(self) -> Term:
        base = self.primary()
        kind, text, pos = self.peek()
        if (kind, text) != ("op", "^"):
            return base
        self.take()
        return Binary("^", base, self.nested(self.unary, pos), pos)

    def primary(self) -> Term:
        kind, text, pos = self.take()
        if kind == "number":
            value = float(text)
            if not math.isfinite(value):
                raise EvalFailure("number is too large", pos)
            return Num(value)
        if kind == "name":
            if self.peek()[1] == "(" and self.peek()[0] == "op":
                return self.call(text, pos)
            return _name(text, pos)
        if (kind, text) == ("op", "("):
            node = self.nested(self.ternary, pos)
            self.expect(")")
            return node
        raise EvalFailure(f"expected a number, name or '(' but found {_describe(kind, text)}", pos)

    def call(self, function: str, position: int) -> Term:
        function = function.lower()
        if function not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise EvalFailure(f"unknown function {function!r} (known: {known})", position)
        self.expect("(")
        args: list[Term] = []
        if self.peek()[1] != ")":
            args.append(self.nested(self.ternary, position))
            while self.peek()[1] == "," and self.peek()[0] == "op":
                self.take()
                args.append(self.nested(self.ternary, position))
                if len(args) > MAX_ARGS:
                    raise EvalFailure(f"{function}() takes at most {MAX_ARGS} arguments", position)
        self.expect(")")
        low, high = FUNCTIONS[function]
        if not low <= len(args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise EvalFailure(f"{function}() takes {wanted} argument(s), got {len(args)}", position)
        if function != "exists":
            return Call(function, tuple(args), position)
        if not isinstance(args[0], Name):
            raise EvalFailure("exists() takes a name, e.g. exists(CM.var1)", position)
        return Exists(args[0].name)


def _describe(kind: str, text: str) -> str:
    return "the end of the formula" if kind == "end" else repr(text)


def _name(text: str, position: int) -> Name:
    name = canonical_name(text)
    if name.startswith("date.") and name[5:] not in DATE_FIELDS:
        known = ", ".join(DATE_FIELDS)
        raise EvalFailure(f"unknown field {name!r} (date has: {known})", position)
    return Name(name, position)


def _reduce(operands: list[Term], op: tuple[str, int]) -> None:
    right = operands.pop()
    operands.append(Binary(op[0], operands.pop(), right, op[1]))


def _children(node: Term) -> tuple[Term, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Cond):
        return (node.test, node.then, node.other)
    return node.args if isinstance(node, Call) else ()


def measure(root: Term) -> tuple[int, int, frozenset[str]]:
    """(node count, depth, names the environment must resolve), without recursion."""
    count, depth, names = 0, 0, set()
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        count, depth = count + 1, max(depth, level)
        if isinstance(node, Name | Exists) and not node.name.startswith("date."):
            names.add(node.name)
        stack.extend((child, level + 1) for child in _children(node))
    return count, depth, frozenset(names)


