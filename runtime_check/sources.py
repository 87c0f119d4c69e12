"""The user's source files as Python's `ast` reads them, each parsed once: the tracer and
the verdicts look up blocks, calls and statement starts in the lines that ran."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from typing import Any


@cache
def parsed(path: str) -> ast.Module | None:
    """The file's tree; None where it cannot be read or parsed (it changed since it ran)."""
    try:
        with open(path, "rb") as file:
            return ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return None


_TO_NUMBER = ("item", "tolist", "float", "int")


@cache
def numbers_in_sums(path: str) -> frozenset[int]:
    """The lines of assignments that compute with a number taken out of a tensor
    (`loss = loss - log_prob.item() * reward`), as opposed to keeping or showing it
    (`total += loss.item()`, `print(loss.item())`)."""
    tree = parsed(path)
    if tree is None:
        return frozenset()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign)) and any(
            isinstance(part, ast.BinOp) and any(_to_number(call) for call in ast.walk(part))
            for part in ast.walk(node.value)
        ):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(lines)


def _to_number(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in _TO_NUMBER


_SWITCHES = ("set_grad_enabled", "_set_grad_enabled")


@cache
def grad_switched_off(path: str) -> dict[int, bool]:
    """The statements that set the grad mode for everything after them, not as a `with`:
    `torch.set_grad_enabled(False)` as a call of its own (and `torch._C._set_grad_enabled`).
    Each line with whether it surely turns autograd off (a literal False) or may (a flag)."""
    tree = parsed(path)
    if tree is None:
        return {}
    found: dict[int, bool] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in _SWITCHES:
            continue
        given = call.args[0] if call.args else None
        given = given or next((k.value for k in call.keywords if k.arg == "mode"), None)
        if isinstance(given, ast.Constant):
            if given.value is False:
                found[node.lineno] = True
        elif given is not None:
            found[node.lineno] = False
    return found


def names_read(path: str, line: int) -> list[tuple[str, str]]:
    """The `name.attribute` reads of the statement at a line (`args.update_decoder`)."""
    tree = parsed(path)
    if tree is None:
        return []
    statement = next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.stmt)
            and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.lineno <= line <= (node.end_lineno or node.lineno)
            and not any(isinstance(c, ast.stmt) for c in ast.iter_child_nodes(node))
        ),
        None,
    )
    if statement is None:
        return []
    return [
        (node.value.id, node.attr)
        for node in ast.walk(statement)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    ]


@cache
def option_defined(path: str, attribute: str) -> int | None:
    """The line of the `add_argument(...)` call in a file that defines the command-line
    option read as `args.<attribute>` (`--update_decoder`, `--update-decoder`, or
    `dest="update_decoder"`)."""
    tree = parsed(path)
    if tree is None:
        return None
    flags = {"--" + attribute, "--" + attribute.replace("_", "-"), attribute}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            continue
        given = {a.value for a in node.args if isinstance(a, ast.Constant)}
        dest = next((k.value for k in node.keywords if k.arg == "dest"), None)
        if (isinstance(dest, ast.Constant) and dest.value == attribute) or (
            given & flags and not isinstance(dest, ast.Constant)
        ):
            return node.lineno
    return None


@cache
def defaults_read(path: str, line: int) -> tuple[tuple[str, Any], ...]:
    """The parameters with a literal default, of the function around a line, that the
    statement at the line or the tests of the `if`s around it read (`if not trainable:`
    over a freeze, `trainable=False` in the `def`): each with its default's value."""
    tree = parsed(path)
    if tree is None:
        return ()
    function = function_around(tree, line)
    if function is None:
        return ()
    defaults: dict[str, Any] = {}
    for argument, default in parameter_defaults(function.args):
        try:
            defaults[argument.arg] = ast.literal_eval(default)
        except ValueError:
            continue
    read: dict[str, None] = {}
    for node in ast.walk(function):
        if not isinstance(node, ast.stmt) or not (
            node.lineno <= line <= (node.end_lineno or node.lineno)
        ):
            continue
        if isinstance(node, (ast.If, ast.While)):
            parts: list[ast.AST] = [node.test]
        elif not any(isinstance(child, ast.stmt) for child in ast.iter_child_nodes(node)):
            parts = [node]  # the statement at the line itself
        else:
            continue
        for part in parts:
            for name in ast.walk(part):
                if isinstance(name, ast.Name) and name.id in defaults:
                    read[name.id] = None
    return tuple((name, defaults[name]) for name in read)


def function_tree(path: str, first: int, function: str) -> ast.AST | None:
    """The tree of the function of a file that starts at line `first` (the module's, for
    `<module>`)."""
    tree = parsed(path)
    if tree is None or function == "<module>":
        return tree
    return next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name == function
            and min([node.lineno, *(d.lineno for d in node.decorator_list)]) == first
        ),
        None,
    )


def dict_display(path: str, first: int, function: str, keys: frozenset[str]) -> int | None:
    """The line of a dict display (`{"train_loss": loss}`) in a function whose keys are
    exactly `keys`, all strings."""
    scope = function_tree(path, first, function)
    if scope is None:
        return None
    for node in ast.walk(scope):
        if (
            isinstance(node, ast.Dict)
            and node.keys
            and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys)
            and {k.value for k in node.keys if isinstance(k, ast.Constant)} == keys
        ):
            return node.lineno
    return None


@cache
def setting_default(path: str, start: int) -> tuple[int, str] | None:
    """For a grad-mode block at line `start` whose mode is chosen by a test (`inference_mode()
    if self.cfg.inference_mode else no_grad()`, there or in the helper the `with` calls), the
    line in the file that gives the tested setting its default (a dataclass field
    `inference_mode: bool = True`, a parameter `inference_mode=True`), and its name."""
    tree = parsed(path)
    if tree is None:
        return None
    helpers = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    tests: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)) and node.lineno == start:
            for item in node.items:
                expr = item.context_expr
                if isinstance(expr, ast.Name):  # (`ctx = inference_mode() if ...`, `with ctx:`)
                    expr = _value_assigned_before(tree, expr.id, start) or expr
                tests += [e.test for e in ast.walk(expr) if isinstance(e, ast.IfExp)]
                target = expr.func if isinstance(expr, ast.Call) else None
                name = target.attr if isinstance(target, ast.Attribute) else ""
                name = name or (target.id if isinstance(target, ast.Name) else "")
                helper = helpers.get(name)
                if helper is not None:
                    tests += [e.test for e in ast.walk(helper) if isinstance(e, ast.IfExp)]
    read = {
        part.attr if isinstance(part, ast.Attribute) else part.id
        for test in tests
        for part in ast.walk(test)
        if isinstance(part, (ast.Attribute, ast.Name))
    }
    return _default_of(tree, read)


@cache
def keyword_default(path: str, line: int, keyword: str) -> tuple[int, str] | None:
    """For a call at a line whose `keyword=` takes a setting (`use_reentrant=self.
    use_reentrant`), the line in the file that gives a setting of that name its default,
    and the name."""
    tree = parsed(path)
    if tree is None:
        return None
    read: set[str] = set()
    spread = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.lineno <= line <= (node.end_lineno or line):
            for given in node.keywords:
                value = given.value
                if given.arg == keyword and isinstance(value, (ast.Attribute, ast.Name)):
                    read.add(value.attr if isinstance(value, ast.Attribute) else value.id)
                spread = spread or given.arg is None
    found = _default_of(tree, read)
    if found is None and spread:
        # (`checkpoint(layer, h, **self.gc_kwargs)`: the keyword comes in a dict of
        # settings, `{"use_reentrant": True}` or `dict(use_reentrant=True)`.)
        found = _keyword_in_dict(tree, keyword)
    return found


def _keyword_in_dict(tree: ast.Module, keyword: str) -> tuple[int, str] | None:
    """The line of a dict display or a `dict(...)` call of the file that gives `keyword` a
    literal value, and the keyword."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == keyword:
                    if isinstance(value, ast.Constant):
                        return value.lineno, keyword
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "dict":
                for given in node.keywords:
                    if given.arg == keyword and isinstance(given.value, ast.Constant):
                        return given.value.lineno, keyword
    return None


def _default_of(tree: ast.Module, read: set[str]) -> tuple[int, str] | None:
    """The line giving one of the names `read` its literal default: a field of a class (a
    dataclass's `inference_mode: bool = True`), or a parameter's default."""
    if not read:
        return None
    for name, value, line in _class_fields(tree):
        if name in read and isinstance(value, ast.Constant):
            return line, name
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for argument, default in parameter_defaults(node.args):
                if argument.arg in read and isinstance(default, ast.Constant):
                    return default.lineno, argument.arg
    return None


@cache
def settings_after(path: str, line: int) -> tuple[tuple[int, str, int, Any], ...]:
    """For a freeze at a line: the settings that calls after it in the same function pass
    to a helper of the file which tests them (`inject_lora(unet, cfg.lora_layers)` over `if
    not target_names: return`, or `if name in targets:`), each left at a literal default of
    the file (a dataclass field, an `add_argument`): what was to make something trainable
    again, and may have matched nothing. Each as (the default's line, the setting's name,
    the call's line, the default)."""
    tree = parsed(path)
    if tree is None:
        return ()
    around = function_around(tree, line)
    if around is None:
        return ()
    helpers = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    found: list[tuple[int, str, int, Any]] = []
    for call in ast.walk(around):
        if not isinstance(call, ast.Call) or call.lineno <= line:
            continue
        target = call.func
        name = target.attr if isinstance(target, ast.Attribute) else ""
        helper = helpers.get(name or (target.id if isinstance(target, ast.Name) else ""))
        if helper is None:
            continue
        parameters = [a.arg for a in [*helper.args.posonlyargs, *helper.args.args]]
        if parameters[:1] == ["self"] and isinstance(target, ast.Attribute):
            parameters = parameters[1:]
        given = list(zip(parameters, call.args, strict=False))
        given += [(k.arg, k.value) for k in call.keywords if k.arg is not None]
        tested = {
            part.id
            for node in ast.walk(helper)
            if isinstance(node, (ast.If, ast.IfExp))
            for part in ast.walk(node.test)
            if isinstance(part, ast.Name)
        }
        for parameter, value in given:
            setting = value.attr if isinstance(value, ast.Attribute) else None
            if parameter not in tested or setting is None:
                continue
            default = _literal_default(tree, setting)
            if default is not None:
                found.append((default[0], setting, call.lineno, default[1]))
    return tuple(found)


def function_around(tree: ast.Module, line: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The innermost function whose lines hold `line`."""
    around: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.lineno <= line <= (node.end_lineno or node.lineno)
            and (around is None or node.lineno >= around.lineno)
        ):
            around = node
    return around


def _literal_default(tree: ast.Module, name: str) -> tuple[int, Any] | None:
    """The line and value of a class field (a dataclass's `lora_layers: tuple = ("to_q",)`)
    or an `add_argument("--name", default=...)` that gives a setting a literal default."""
    for field, value, line in _class_fields(tree):
        if field == name:
            return _literal_at(value, line)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
            and any(
                isinstance(a, ast.Constant) and str(a.value).lstrip("-").replace("-", "_") == name
                for a in node.args
            )
        ):
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            return (node.lineno, None) if default is None else _literal_at(default, node.lineno)
    return None


def _class_fields(tree: ast.Module) -> Iterator[tuple[str, ast.expr, int]]:
    """The fields with a value in the classes of a file (a dataclass's `name: type = value`):
    each name, value and line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for field in node.body:
                if (
                    isinstance(field, ast.AnnAssign)
                    and isinstance(field.target, ast.Name)
                    and field.value is not None
                ):
                    yield field.target.id, field.value, field.lineno


def _literal_at(value: ast.expr, line: int) -> tuple[int, Any] | None:
    try:
        return line, ast.literal_eval(value)
    except ValueError:
        return None


@cache
def type_test_around(path: str, line: int) -> int | None:
    """The innermost `if` whose body holds a line and whose test checks only a value's type
    (`if isinstance(a, torch.Tensor):`, `if torch.is_tensor(a):`), not its dtype: what it
    lets through includes integer tensors."""
    tree = parsed(path)
    if tree is None:
        return None
    best: int | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.If) or not node.body:
            continue
        end = node.body[-1].end_lineno or node.body[-1].lineno
        if not node.body[0].lineno <= line <= end or (best is not None and node.lineno < best):
            continue
        text = ast.unparse(node.test)
        if "float" in text or "dtype" in text:
            continue
        if "isinstance" in text or "is_tensor" in text or _tests_loop_name(tree, node, line):
            best = node.lineno
    return best


def _tests_loop_name(tree: ast.Module, test: ast.If, line: int) -> bool:
    """Whether an `if` tests the name that a loop around it goes through and whose flag
    `line` sets (`for t in conds: if t is not None: t.requires_grad_(True)`): the guard on
    what the items of a mixed collection may be."""
    tested = {n.id for n in ast.walk(test.test) if isinstance(n, ast.Name)}
    receivers = {
        node.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("requires_grad", "requires_grad_")
        and isinstance(node.value, ast.Name)
        and node.lineno == line
    }
    names = tested & receivers
    if not names:
        return False
    for loop in ast.walk(tree):
        if isinstance(loop, ast.For) and loop.body and loop.lineno < test.lineno:
            end = loop.body[-1].end_lineno or loop.body[-1].lineno
            looped = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
            if test.lineno <= end and names & looped:
                return True
    return False


def _value_assigned_before(tree: ast.Module, name: str, line: int) -> ast.expr | None:
    """The value last assigned to `name` before `line`, in the function around it."""
    around = function_around(tree, line) or tree
    found: ast.expr | None = None
    for node in ast.walk(around):
        if (
            isinstance(node, ast.Assign)
            and node.lineno < line
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and (found is None or node.lineno > found.lineno)
        ):
            found = node.value
    return found


def parameter_defaults(arguments: ast.arguments) -> list[tuple[ast.arg, ast.expr]]:
    """A function's parameters that have a default, each with it."""
    positional = [*arguments.posonlyargs, *arguments.args]
    given = positional[len(positional) - len(arguments.defaults) :]
    pairs = list(zip(given, arguments.defaults, strict=True))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        if default is not None:
            pairs.append((argument, default))
    return pairs


@cache
def returned(path: str, first: int, function: str, line: int) -> int | None:
    """The line of a `return` of a function that hands out, as it is (alone, or an item of
    a tuple, a list or a dict display), the name assigned at `line`: `logits = model(x)`,
    then `return {"logits": logits}`."""
    scope = function_tree(path, first, function)
    if scope is None or function == "<module>":
        return None
    names = {
        target.id
        for node in ast.walk(scope)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        and node.lineno <= line <= (node.end_lineno or node.lineno)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    if not names:
        return None
    for node in ast.walk(scope):
        if isinstance(node, ast.Return) and node.value is not None:
            for item in _handed(node.value):
                if isinstance(item, ast.Name) and item.id in names:
                    return item.lineno
    return None


def _handed(value: ast.expr) -> list[ast.expr]:
    if isinstance(value, (ast.Tuple, ast.List)):
        return list(value.elts)
    if isinstance(value, ast.Dict):
        return list(value.values)
    return [value]


@cache
def skipped_freeze(path: str, first: int, function: str) -> tuple[int, str] | None:
    """In a function, a freeze (`p.requires_grad_(False)`, `p.requires_grad = False`) under
    an `if` on a parameter whose literal default skips it (`def load(freeze=False)` and
    `if freeze:`): the default's line and the parameter's name."""
    scope = function_tree(path, first, function)
    if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    defaults = {argument.arg: default for argument, default in parameter_defaults(scope.args)}
    for node in ast.walk(scope):
        if not isinstance(node, ast.If) or not any(_freezes(part) for part in node.body):
            continue
        test, negated = node.test, False
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test, negated = test.operand, True
        default = defaults.get(test.id) if isinstance(test, ast.Name) else None
        if isinstance(test, ast.Name) and isinstance(default, ast.Constant):
            if bool(default.value) is negated:  # (the default skips the freeze)
                return default.lineno, test.id
    return None


def _freezes(statement: ast.stmt) -> bool:
    for node in ast.walk(statement):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "requires_grad_"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value is False
        ):
            return True
        if (
            isinstance(node, ast.Assign)
            and any(
                isinstance(target, ast.Attribute) and target.attr == "requires_grad"
                for target in node.targets
            )
            and isinstance(node.value, ast.Constant)
            and node.value.value is False
        ):
            return True
    return False


@cache
def changed_name(path: str, line: int) -> str | None:
    """The name a statement at a line changes in place (`total /= n`, `total.add_(x)`)."""
    tree = parsed(path)
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, ast.stmt) or node.lineno != line:
            continue
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            return node.target.id
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr.endswith("_")
            and isinstance(node.value.func.value, ast.Name)
        ):
            return node.value.func.value.id
    return None


@cache
def flag_off_after(path: str, line: int) -> int | None:
    """The statement, later in the function around a line that changes a tensor in place
    (`out[:, 0::2] = ...`), that turns that tensor's requires_grad off: too late, for the
    change has raised by then."""
    tree = parsed(path)
    function = function_around(tree, line) if tree is not None else None
    if function is None:
        return None
    names: set[str] = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.stmt) or node.lineno != line:
            continue
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign):
            targets = [node.target]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            targets = [node.value.func]
        for target in targets:
            while isinstance(target, (ast.Subscript, ast.Attribute)):
                target = target.value
            if isinstance(target, ast.Name):
                names.add(target.id)
    later = []
    for node in ast.walk(function):
        if not isinstance(node, ast.stmt) or node.lineno <= line:
            continue
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and node.value.value is False
            and any(
                isinstance(t, ast.Attribute)
                and t.attr == "requires_grad"
                and isinstance(t.value, ast.Name)
                and t.value.id in names
                for t in node.targets
            )
        ) or (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "requires_grad_"
            and isinstance(node.value.func.value, ast.Name)
            and node.value.func.value.id in names
            and any(isinstance(a, ast.Constant) and a.value is False for a in node.value.args)
        ):
            later.append(node.lineno)
    return min(later) if later else None


@cache
def assigned_in_block(path: str, start: int, name: str) -> tuple[int, ...]:
    """The lines inside the `with` block that starts at a line that assign `name`
    (`total += loss_fn(pred, y)` under `with torch.inference_mode():`)."""
    tree = parsed(path)
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, (ast.With, ast.AsyncWith)) and node.lineno == start:
            return tuple(
                inner.lineno
                for inner in ast.walk(node)
                if (
                    isinstance(inner, ast.AugAssign)
                    and isinstance(inner.target, ast.Name)
                    and inner.target.id == name
                )
                or (
                    isinstance(inner, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == name for t in inner.targets)
                )
            )
    return ()


@cache
def carried_attribute(
    path: str, first: int, function: str, line: int
) -> tuple[tuple[int, str, int], ...]:
    """The names read at a line of a method that it took from an attribute of `self`
    (`params = self.params`), which the method also sets (`self.params = params`): state
    carried from its last call. Each as (the line that takes it, the attribute, the line
    that sets it)."""
    scope = function_tree(path, first, function)
    if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return ()
    read = {
        node.id
        for statement in ast.walk(scope)
        if isinstance(statement, ast.stmt) and statement.lineno == line
        for node in ast.walk(statement)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    taken: list[tuple[int, str]] = []  # (line, attribute) read into a name read at `line`
    # (or read at `line` itself: `self.lstm(x, self.state)`)
    taken += [
        (line, node.attr)
        for statement in ast.walk(scope)
        if isinstance(statement, ast.stmt) and statement.lineno == line
        for node in ast.walk(statement)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Load)
        and _self_attribute(node)
    ]
    sets: dict[str, int] = {}  # attribute -> line that sets it
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        if (
            isinstance(target, ast.Name)
            and target.id in read
            and node.lineno < line
            and _self_attribute(value)
        ):
            taken.append((node.lineno, value.attr))  # type: ignore[attr-defined]
        elif _self_attribute(target) and isinstance(value, ast.Name):
            sets[target.attr] = node.lineno  # type: ignore[attr-defined]
    return tuple(
        (at, attribute, sets[attribute]) for at, attribute in sorted(taken) if attribute in sets
    )


def _self_attribute(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


_CONTAINERS = ("Sequential", "ModuleList")


@cache
def element_line(path: str, line: int, index: int) -> int | None:
    """The line of the `index`-th layer of an `nn.Sequential(...)` (or `nn.ModuleList([...])`)
    call that starts at a line: the layer itself, where the call spans several lines."""
    tree = parsed(path)
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, ast.Call) or node.lineno != line:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in _CONTAINERS:
            continue
        items: list[ast.expr] = list(node.args)
        if len(items) == 1 and isinstance(items[0], (ast.List, ast.Tuple)):
            items = list(items[0].elts)
        if any(isinstance(item, ast.Starred) for item in items):
            return None
        return items[index].lineno if index < len(items) else None
    return None
