"""The mutants of one source file: small AST edits, each one fault a test should catch.

A mutant is one edit of one node, found by walking the module's AST in a fixed order
(``ast.walk``), so that the same source always gives the same mutants with the same
indices. Applying it re-parses the source, edits that node and unparses the module
(comments and formatting are lost; the code is the same).

Operators (``Mutant.operator``):

- ``compare_flip``: a comparison negated (``==``/``!=``, ``<``/``>=``, ``>``/``<=``,
  ``in``/``not in``); ``is_flip``: ``is``/``is not`` (``x is None`` -> ``x is not None``).
- ``compare_boundary``: ``<``/``<=`` and ``>``/``>=`` swapped (off-by-one).
- ``negate_cond``: the test of an ``if``, ``while`` or conditional expression negated;
  ``drop_not``: a ``not`` removed.
- ``and_or``: ``and`` and ``or`` swapped.
- ``const+1`` / ``const-1``: an int constant (not a bool) plus or minus one.
- ``return_none``: ``return expr`` -> ``return None``.
- ``delete_call``: a call statement (``merged.append(None)``) -> ``pass``.
- ``delete_raise``: ``raise ...`` -> ``pass``.

Statements marked ``# pragma: no cover`` (code for other jax versions), with their
bodies, are not mutated; nor are annotations and docstrings.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import random
from collections.abc import Callable, Iterator

_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BOUNDARY: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One edit: node ``index`` in ``ast.walk`` order, changed by ``operator`` (variant ``k``)."""

    file: str  # relative to the repository root
    index: int
    operator: str
    k: int  # which comparison operand, for a chained comparison
    line: int
    function: str  # the enclosing def/class path, or "<module>"
    before: str  # the source of the edited node
    after: str  # its mutated source

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What names a mutant across line-number shifts: file, function, the edit."""
        return (self.file, self.function, self.operator, f"{self.before} -> {self.after}")


def _scopes(tree: ast.AST) -> dict[int, str]:
    """``id(node)`` -> the dotted name of its enclosing function or class."""
    out: dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = child.name if scope == "<module>" else f"{scope}.{child.name}"
            out[id(child)] = name
            visit(child, name)

    visit(tree, "<module>")
    return out


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """Nodes inside annotations (never run: ``from __future__ import annotations``)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.AST | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None:
                out.update(id(n) for n in ast.walk(annotation))
    return out


def _edits(node: ast.AST) -> Iterator[tuple[str, int, Callable[[ast.AST], ast.AST]]]:
    """``(operator, k, edit)`` for every mutation of ``node``; ``edit`` returns the new node."""
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in _FLIP:
                name = "is_flip" if isinstance(op, ast.Is | ast.IsNot) else "compare_flip"

                def flip(n: ast.AST, k: int = k) -> ast.AST:
                    assert isinstance(n, ast.Compare)
                    n.ops[k] = _FLIP[type(n.ops[k])]()
                    return n

                yield name, k, flip
            if type(op) in _BOUNDARY:

                def boundary(n: ast.AST, k: int = k) -> ast.AST:
                    assert isinstance(n, ast.Compare)
                    n.ops[k] = _BOUNDARY[type(n.ops[k])]()
                    return n

                yield "compare_boundary", k, boundary
    elif isinstance(node, ast.If | ast.While | ast.IfExp):

        def negate(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.If | ast.While | ast.IfExp)
            n.test = ast.UnaryOp(op=ast.Not(), operand=n.test)
            return n

        yield "negate_cond", 0, negate
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop_not", 0, lambda n: n.operand  # type: ignore[attr-defined]
    elif isinstance(node, ast.BoolOp):

        def swap(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.BoolOp)
            n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
            return n

        yield "and_or", 0, swap
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        value = node.value
        for delta, name in ((1, "const+1"), (-1, "const-1")):

            def shift(n: ast.AST, d: int = delta) -> ast.AST:
                return ast.Constant(value + d)

            yield name, 0, shift
    elif isinstance(node, ast.Return):
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            yield "return_none", 0, lambda n: ast.Return(value=ast.Constant(None))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield "delete_call", 0, lambda n: ast.Pass()
    elif isinstance(node, ast.Raise):
        yield "delete_raise", 0, lambda n: ast.Pass()


def _node_source(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 120 else text[:117] + "..."


def _describe(
    node: ast.AST, edit: Callable[[ast.AST], ast.AST], parents: dict[int, ast.AST]
) -> tuple[str, str]:
    """``(before, after)``: the source of the edit in enough context to read it.

    An expression is shown within its enclosing expression (up to about 70 characters),
    an ``if``/``while`` by its test, anything else as it is.
    """
    if isinstance(node, ast.If | ast.While):
        keyword = "if" if isinstance(node, ast.If) else "while"
        mutated = edit(copy.deepcopy(node))
        assert isinstance(mutated, ast.If | ast.While)
        return f"{keyword} {_node_source(node.test)}", f"{keyword} {_node_source(mutated.test)}"
    context = node
    while isinstance(parent := parents.get(id(context)), ast.expr) and len(ast.unparse(parent)) <= 70:
        context = parent
    if context is node:
        return _node_source(node), _node_source(edit(copy.deepcopy(node)))
    position = next(i for i, n in enumerate(ast.walk(context)) if n is node)
    assert isinstance(context, ast.expr)
    wrapper = ast.Expression(body=copy.deepcopy(context))
    target = next(n for i, n in enumerate(ast.walk(wrapper.body)) if i == position)
    _replace(wrapper, target, edit(copy.deepcopy(target)))
    return _node_source(context), _node_source(wrapper.body)


def find(file: str, source: str) -> list[Mutant]:
    """Every mutant of ``source`` (the text of ``file``), in a fixed order."""
    tree = ast.parse(source)
    lines = source.splitlines()
    scopes = _scopes(tree)
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    annotations = _annotation_nodes(tree)
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }
    skipped = {  # the lines of every statement or handler marked "pragma: no cover"
        line
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt | ast.excepthandler) and "pragma: no cover" in lines[node.lineno - 1]
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }
    out = []
    for index, node in enumerate(ast.walk(tree)):
        line = getattr(node, "lineno", 0)
        if not line or id(node) in annotations or id(node) in docstrings or line in skipped:
            continue
        for operator, k, edit in _edits(node):
            before, after = _describe(node, edit, parents)
            if after == before:
                continue
            out.append(
                Mutant(file, index, operator, k, line, scopes.get(id(node), "<module>"), before, after)
            )
    return out


def apply(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant`` applied (the whole module unparsed)."""
    tree = ast.parse(source)
    node = next((n for i, n in enumerate(ast.walk(tree)) if i == mutant.index), None)
    if node is None:  # pragma: no cover - the source changed under us
        raise LookupError(f"no node {mutant.index} in {mutant.file}")
    for operator, k, edit in _edits(node):
        if operator == mutant.operator and k == mutant.k:
            new = edit(copy.deepcopy(node))
            break
    else:  # pragma: no cover
        raise LookupError(f"node {mutant.index} of {mutant.file} has no {mutant.operator} mutant")
    _replace(tree, node, new)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``old`` is in ``tree``."""
    ast.copy_location(new, old)
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
    raise LookupError("node not found")  # pragma: no cover


def sample(mutants: list[Mutant], n: int, seed: int) -> list[Mutant]:
    """``n`` of ``mutants`` (all if fewer), chosen by ``seed`` and the file name; in line order."""
    if n >= len(mutants):
        return list(mutants)
    rng = random.Random(f"{seed}:{mutants[0].file}")
    return sorted(rng.sample(mutants, n), key=lambda m: (m.line, m.index, m.operator, m.k))


def apply_none(source: str) -> str:
    """``source`` unparsed without any edit: the baseline every mutant is compared with."""
    return ast.unparse(ast.parse(source)) + "\n"
