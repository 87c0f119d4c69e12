"""The interpreter's own state, shared by its parts (calls, torch calls, graph tracking):
what it has learnt of the module so far, and where the running code is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.analysis.facts import (
    Facts,
    FreezeChange,
    FreezeUndone,
    ParamsMissed,
    UnregisteredLayers,
)
from gradlint.analysis.names import resolve_dotted
from gradlint.analysis.scopes import (
    ClassInfo,
    FunctionInfo,
    ScopeCollector,
)
from gradlint.analysis.state import Effects, Frame, State
from gradlint.analysis.syntax import _names_assigned, _names_read, _names_reset
from gradlint.analysis.train_modes import Left, LoopPass, TrainMode, set_mode
from gradlint.analysis.values import (
    NO,
    UNKNOWN,
    YES,
    Kind,
    Node,
    Tri,
    Value,
    sites_of,
)


def _trainable_layers(value: Value) -> bool:
    """A layer with parameters that train, or a sequence of such layers."""
    if value.kind is Kind.SEQUENCE and value.item is not None:
        value = value.item
    return value.kind is Kind.MODULE and value.has_params is YES and value.frozen is NO


@dataclass
class LoopRun:
    """A loop the interpreter is running, beside `_loops`."""

    conditions: int  # how many enclosing `if` tests (`_conditions`) there were at its start
    depth: int  # how many functions were running then
    passage: int = 0  # the id of the pass being run
    started: int = 0  # the clock when it began: graph sites made since were made in it
    # The tests under which a `continue` ran on this pass.
    skipped: list[cst.BaseExpression] = field(default_factory=list)
    # The states at each `continue` and `break` of this pass: they reach the next pass and
    # the code after the loop, as the state at the end of the body does.
    continued: list[State] = field(default_factory=list)
    broken: list[State] = field(default_factory=list)


class InterpreterBase:
    def __init__(self, module: cst.Module) -> None:
        self.facts = Facts(module)
        self.scopes = ScopeCollector(module, self.facts.imports)
        self.imports = self.facts.imports
        self.class_attrs: dict[str, dict[str, Value]] = {}
        # What each class's __init__ froze: all of it, or some of its attributes.
        self.class_frozen: dict[str, Tri] = {}
        self.class_frozen_attrs: dict[str, dict[str, Tri]] = {}
        self.class_frozen_at: dict[str, dict[str, cst.CSTNode]] = {}  # ... and where
        # Classes that register parameters or layers by name (register_parameter, setattr).
        self.dynamic_classes: set[str] = set()
        # Subclasses of nn.Sequential: the layers their __init__ hands to it.
        self.class_layers: dict[str, tuple[Value, ...]] = {}
        self._memo: dict[tuple[object, ...], tuple[Value, dict[str, Value], Effects]] = {}
        # A remembered call -> the parts of its inputs (an argument, an item of one, an
        # attribute of `self`) whose graphs went whole into what it returned or wrote; None
        # where that is not known (then every input's graph may have).
        self._memo_sources: dict[tuple[object, ...], frozenset[object] | None] = {}
        self._functions: dict[int, FunctionInfo] = {}  # functions used as values, by id
        # Lambdas used as values, by id: the lambda and the names it closes over.
        self._lambdas: dict[int, tuple[cst.Lambda, dict[str, Value]]] = {}
        self._lambda_keys: dict[tuple[int, int], int] = {}  # (lambda, closure) -> its key
        # A nested function: the environment of the call that defined it (late binding).
        self._closures: dict[int, dict[str, Value]] = {}
        self._lambda_depth = 0
        self._call_inputs: dict[int, frozenset[Node]] = {}  # call -> its arguments' graphs
        self._runs: dict[FunctionInfo, int] = {}
        self._ran: set[FunctionInfo] = set()
        self._running: set[FunctionInfo] = set()
        self._loops: list[cst.For | cst.While] = []
        self._statement: cst.CSTNode | None = None
        self._loop_sites: list[set[int]] = []
        self._function: FunctionInfo | None = None
        self._return_values: list[Value] = []
        self._return_states: list[State] = []
        self._yield_values: list[Value] = []
        self._site_nodes: dict[int, cst.CSTNode] = {}
        # Graph node -> the graph nodes made from it (as named when they were made).
        self._consumers: dict[Node, set[Node]] = {}
        self._generation = 0
        self._loop_generations: dict[int, cst.CSTNode] = {}  # a loop pass's generation -> loop
        self._stale: Node | None = None  # the stale graph node the last entry was found from
        self._layer: int | None = None  # the layer of a Sequential being run
        self._module_calls: set[int] = set()  # calls that ran a model or a layer
        self._moving_sites: set[int] = set()  # sites of ops that only move values
        self._conditions: list[cst.BaseExpression] = []  # tests of the enclosing `if`s
        self._loop_runs: list[LoopRun] = []  # beside `_loops`: where each one stands
        self._loop_names: dict[int, frozenset[str]] = {}  # loop -> names it assigns
        self._loop_resets: dict[int, frozenset[str]] = {}  # ... outside its inner loops
        self._comprehensions = 0  # comprehensions whose element is being evaluated
        self._branches: list[int] = []  # ... and which of their branches runs (its id)
        self._used_up_at: dict[int, cst.CSTNode] = {}  # a parameters() generator -> its use
        self._generators_made: dict[int, cst.CSTNode] = {}  # ... -> the call that made it
        self._bound_at: dict[int, cst.CSTNode] = {}  # graph site -> the last `name = ...`
        # (function, name) -> the `name = other` that last made name an alias of a tensor
        self._aliases: dict[tuple[int, str], cst.CSTNode] = {}
        self._bound_by: dict[tuple[int, str], cst.CSTNode] = {}  # ... the last `name = ...`
        self._site_order: dict[int, int] = {}  # sites in the order first met
        self._site_keys: dict[object, int] = {}  # what a site stands for -> its number
        self._tick = 0  # the clock (tick_clock): orders graph nodes, backwards, steps, freezes
        self._site_tick: dict[int, int] = {}  # site -> when it last made a node
        self._step_ticks: dict[int, int] = {}  # optimizer.step() call -> when it ran
        self._weights: dict[int, str] = {}  # weights pseudo-tensor -> the module's path
        self._site_module_value: dict[int, Value] = {}  # site -> the module whose call made it
        self._site_module_call: dict[int, cst.CSTNode] = {}  # ... and that call
        # The output of a model called by the code that uses it -> the model's path.
        self._model_calls: dict[int, str | None] = {}
        self._model_outputs: dict[Node, cst.Call | None] = {}  # ... and the call, per output
        self._steps: list[tuple[int, frozenset[str]]] = []  # optimizer steps: when, whose
        self._backward_ticks: dict[int, int] = {}  # backward() call -> when it last ran
        # Optimizer -> the modules it holds: as named where it was made, and as named
        # through the attributes that hold them there.
        self._optimizer_roots: dict[int, tuple[frozenset[str], ...]] = {}
        self._sure_cuts: set[int] = set()  # cuts (detach, item) of computed tensors with a graph
        self._active: list[FunctionInfo] = []  # the functions running, outermost first
        self._function_sites: dict[FunctionInfo, set[int]] = {}  # sites each one makes
        self._call_path: list[cst.Call | None] = []  # the calls that led to the running code
        self._made_during: dict[int, tuple[cst.Call | None, ...]] = {}  # site -> call path
        self._saving_sites: set[int] = set()  # ops that save tensors for backward
        # ... of those, indexing with a mask or indices (`x[keep]`): it saves only them.
        self._index_sites: set[int] = set()
        self.module_env: dict[str, Value] = {}
        self._frames: list[Frame] = []
        # Module classes that keep layers with parameters in a plain list: where.
        self.unregistered: dict[str, cst.CSTNode] = {}
        self._freeze_sites: set[int] = set()  # statements and calls that froze parameters
        self._last_writes: dict[str, Value] = {}  # what the last call set on its `self`
        self._moved_from: dict[int, int] = {}  # op that copied a grad leaf -> the leaf's site
        # (module class, attribute) assigned something other than a tensor left unregistered.
        self._registered_attrs: set[tuple[str, str]] = set()
        # (module class, attribute) -> the plain list or dict its constructor assigned there.
        self._plain_containers: dict[tuple[str, str], cst.BaseExpression] = {}
        # (module class, attribute) of the layers its constructor registers by name
        self._module_attrs: set[tuple[str, str]] = set()
        # Freezes, unfreezes, optimizers built and training steps, on the clock.
        self._trained_at = -1  # the clock at the last backward() or optimizer step
        self._used_at = -1  # the clock at the last call of a module
        # A freeze (its node's id) -> when it last ran, the `if`s and loops around it, and
        # the calls that led to it.
        self._freeze_runs: dict[int, FreezeRun] = {}
        # Optimizer (its origin) -> where it was built, the modules it was given, whether
        # only their trainable parameters, and the parts of them frozen then.
        self._optimizers_made: dict[int, BuiltOptimizer] = {}
        # Optimizer (its origin) -> parameters made trainable that it lacks: where, and
        # whether by a new layer.
        self._missed: dict[int, tuple[cst.CSTNode, bool]] = {}
        self._pass_count = 0
        # Graph site marking what a model call returned in an eval mode left by an
        # evaluation -> where to report, what left it, the model call, the model.
        self._eval_left: dict[int, tuple[cst.CSTNode, cst.CSTNode, cst.Call, str]] = {}

    def building(self) -> ClassInfo | None:
        """The module class whose constructor (or a method it calls) is running."""
        owner = self._function.owner if self._function is not None else None
        if owner is None or not owner.is_module:
            return None
        building = any(f.name == "__init__" and f.owner is owner for f in self._active)
        return owner if building else None

    def note_layers_added(self, key: str, added: Value, where: cst.CSTNode) -> None:
        """`self.layers.append(layer)` (or `[k] = layer`) in a module's constructor: a
        layer with parameters put into a plain container, which registers none of them."""
        owner = self.building()
        if owner is None or not key.startswith("self.") or "." in key[5:]:
            return
        container = self._plain_containers.get((owner.name, key[5:]))
        if container is not None and _trainable_layers(added):
            found = UnregisteredLayers(container, owner.name, key[5:], where)
            self.facts.unregistered_layers.append(found)

    # The parts above this one that the lower parts call back into: running statements and
    # expressions (interpreter.py) and calls of the module's own functions (calls.py).

    def exec_block(
        self, statements: Sequence[cst.BaseStatement | cst.BaseSmallStatement], state: State
    ) -> State:
        raise NotImplementedError

    def eval(self, expr: cst.BaseExpression, state: State) -> Value:
        raise NotImplementedError

    def class_constant(self, cls_name: str, attr: str) -> Value | None:
        raise NotImplementedError

    def run_function(
        self,
        info: FunctionInfo,
        args: list[Value] | None = None,
        kwargs: dict[str, Value] | None = None,
        caller: State | None = None,
        self_value: Value | None = None,
        call: cst.Call | None = None,
    ) -> Value:
        raise NotImplementedError

    def invoke(
        self,
        callee: Value,
        positional: list[Value],
        keywords: dict[str, Value],
        node: cst.Call,
        state: State,
    ) -> Value:
        raise NotImplementedError

    def is_global(self, key: str, state: State) -> bool:
        """Whether a dotted name inside a function starts at a module-level variable."""
        base = key.split(".", 1)[0]
        return self._function is not None and base not in state.env and base in self.module_env

    def ref_of(self, qualname: str) -> Value | None:
        """A torch class as a value, to be called later: `nn.Linear`, an optimizer class."""
        if not qualname.rpartition(".")[2][:1].isupper():
            return None
        if qualname.startswith("torch.optim.") and "lr_scheduler" not in qualname:
            # Any optimizer class builds an optimizer: one name, so that a loop over
            # several (`for opt_class in (Adam, SGD)`) still knows what it calls.
            return Value(kind=Kind.OTHER, layer="ref", path="torch.optim.Optimizer")
        if qualname.startswith(("torch.nn.", "torch.utils.data.")):
            return Value(kind=Kind.OTHER, layer="ref", path=qualname)
        return None

    def guards(self) -> list[cst.BaseExpression]:
        """The tests that decide, inside the innermost loop, whether the running code runs
        on a pass: those of the `if`s around it, and of `if`s that ran `continue` before."""
        if not self._loop_runs:
            return []
        run = self._loop_runs[-1]
        return [*self._conditions[run.conditions :], *run.skipped]

    def unguarded_loops(self) -> frozenset[int]:
        """The running loops (ids) on every pass of which the running code runs: no `if`
        around it, and no `continue` before it, inside them."""
        found: set[int] = set()
        for depth in range(len(self._loops) - 1, -1, -1):
            run = self._loop_runs[depth]
            if len(self._conditions) > run.conditions or any(
                later.skipped for later in self._loop_runs[depth:]
            ):
                break
            found.add(id(self._loops[depth]))
        return frozenset(found)

    def counted_guard(self) -> frozenset[str]:
        """The names that guard the running code inside the innermost loop and that loop
        changes (`if (i + 1) % k == 0`, `if count < k: continue`): if any, it runs on some
        passes of every run of the loop, by design."""
        guards = self.guards()
        if not guards or not self._loops:
            return frozenset()
        loop = self._loops[-1]
        names = self._loop_names.get(id(loop))
        if names is None:
            names = self._loop_names[id(loop)] = _names_assigned(loop)
        read: frozenset[str] = frozenset().union(*(_names_read(test) for test in guards))
        return names & read

    def names_reset(self, loop: cst.For | cst.While) -> frozenset[str]:
        found = self._loop_resets.get(id(loop))
        if found is None:
            found = self._loop_resets[id(loop)] = _names_reset(loop)
        return found

    def next_pass(self) -> None:
        """The innermost running loop starts a pass."""
        self._pass_count += 1
        self._loop_runs[-1].passage = self._pass_count
        self._loop_runs[-1].skipped = []
        self._loop_runs[-1].continued = []
        self._loop_runs[-1].broken = []

    def running_passes(self) -> frozenset[LoopPass]:
        return frozenset(
            (id(loop), run.passage) for loop, run in zip(self._loops, self._loop_runs, strict=True)
        )

    def call_from(self, at: cst.CSTNode | None, node: cst.CSTNode) -> cst.CSTNode:
        """The call, made by the function that ran `at`, that led to `node` (where that
        function's code chose to run what is below); `node` where `at` ran in the running
        function, or where it is not known."""
        index = self.call_index(at)
        call = self._call_path[index] if index is not None else None
        return call if call is not None else node

    def call_index(self, at: cst.CSTNode | None) -> int | None:
        """Where in the running calls (`_call_path`, `_active`) is the call that the
        function that ran `at` made: None where `at` ran in the running function, or where
        it is not known."""
        if at is None or at not in self.facts.scope:
            return None
        function = self.facts.scope[at]
        index = 0  # module level: the outermost call
        if function is not None:
            found = [i for i, active in enumerate(self._active) if active is function]
            if not found:
                return None
            index = found[-1] + 1
        return index if index < len(self._call_path) else None

    def training_entry(self, at: cst.CSTNode) -> cst.CSTNode:
        """Where training resumes in the eval mode that `at` left: in a training routine
        called from the code that ran `at`, which loops over batches itself, the outermost
        loop of that routine around the running code (it should set its own mode before
        it); otherwise `at`, where the mode was left."""
        index = self.call_index(at)
        if index is None:
            return at
        for loop, run in zip(self._loops, self._loop_runs, strict=True):
            if run.depth > index:
                return loop
        return at

    def set_training(self, module: Value, flag: Tri, node: cst.CSTNode, state: State) -> None:
        """`module.train(flag)` / `module.eval()` at `node`."""
        if module.path is not None:
            passes = self.running_passes()
            left = frozenset({Left(node, passes, path=module.path)}) if flag is NO else frozenset()
            set_mode(module.path, TrainMode(flag, node, left), state.training)

    def in_loop(self) -> bool:
        """Whether the running code is inside a loop of its own function (or module)."""
        return len(self._loops) > (self._frames[-1].loops if self._frames else 0)

    def propagate(self, value: Value, escapes: bool = True) -> None:
        """`value` reaches a backward, or code that may run one: what it holds may be
        back-propagated. `escapes`: it goes to code the analysis does not follow (not a
        backward here, nor what a forward returns to a caller the analysis runs)."""
        if value.kind is not Kind.NUMBER and value.kind is not Kind.OTHER:
            sites = sites_of(value)
            self.facts.propagated_sites |= sites
            if escapes:
                self.facts.escaped_sites |= sites

    def site_key(self, *parts: object) -> int:
        """The number of the graph site that `parts` (ids of nodes, labels) stand for, in
        the order sites are first met. Sets of graph nodes then iterate in the same order
        on every run: ids (memory addresses) and string hashes differ from run to run, and
        which node a set yields first decides some reports."""
        key = parts if len(parts) != 1 else parts[0]
        number = self._site_keys.get(key)
        if number is None:
            number = self._site_keys[key] = len(self._site_keys) + 1
        return number

    def from_earlier_pass(self, graph: frozenset[Node], site: int | None = None) -> bool:
        """Whether `graph` holds a node (of `site`, if given) made on an earlier pass of a
        loop that is running now: something carried from one iteration to the next."""
        running = set(map(id, self._loops))
        return any(
            (site is None or node[0] == site) and id(self._loop_generations.get(node[1])) in running
            for node in graph
            if node[1] != 0
        )

    def set_list(self, key: str, value: Value, state: State) -> None:
        """A list kept under `key` changed in place (filled, emptied): on a module-level
        object (`del policy.saved_log_probs[:]` in a function), the module's."""
        if "." in key and self.is_global(key, state):
            self.module_env[key] = value
            return
        state.env[key] = value
        self.update_class_attr(key, value)

    def find_method(self, cls: ClassInfo, name: str) -> FunctionInfo | None:
        """The method a local class defines or inherits from a local base."""
        seen: set[str] = set()
        todo = [cls]
        while todo:
            current = todo.pop(0)
            if current.name in seen:
                continue
            seen.add(current.name)
            if name in current.methods:
                return current.methods[name]
            todo.extend(self.scopes.classes[b] for b in current.bases if b in self.scopes.classes)
        return None

    def method_of(self, receiver: Value, method: str) -> FunctionInfo | None:
        """The local method `receiver.method` calls, for an instance of a local class."""
        if receiver.cls is None or receiver.cls not in self.scopes.classes:
            return None
        return self.find_method(self.scopes.classes[receiver.cls], method)

    def layers_of(self, module: Value) -> tuple[Value, ...] | None:
        if module.layer == "Sequential" and module.items is not None:
            return module.items
        if module.cls is not None and module.cls in self.class_layers:
            cls = self.scopes.classes.get(module.cls)
            if cls is not None and self.find_method(cls, "forward") is None:
                return self.class_layers[module.cls]
        return None

    def instance_of(self, cls: ClassInfo, path: str | None) -> Value:
        if not cls.is_module:
            return Value(kind=Kind.OTHER, cls=cls.name, path=path)
        return Value(
            kind=Kind.MODULE,
            cls=cls.name,
            path=path,
            has_params=self.class_has_params(cls),
            frozen=self.class_frozen.get(cls.name, NO),
        )

    def layer_subclass(self, name: str, depth: int = 8) -> bool:
        """Whether a class of the file's extends a layer of `torch.nn` other than `Module`
        itself, directly or through other classes of the file's."""
        cls = self.scopes.classes.get(name)
        if cls is None or depth == 0:
            return False
        for base in cls.bases:
            if base in self.scopes.classes and base != name:
                if self.layer_subclass(base, depth - 1):
                    return True
                continue
            resolved = resolve_dotted(self.imports, base) if base else None
            if (
                resolved is not None
                and resolved.startswith("torch.nn.")
                and resolved not in ("torch.nn.Module",)
            ):
                return True
        return False

    def class_has_params(self, cls: ClassInfo) -> Tri:
        if cls.name in self.dynamic_classes:
            return UNKNOWN  # registers parameters by name: not seen here
        attrs = self.class_attrs.get(cls.name, {})
        # A class that sets nothing on itself and has no __init__ adds no parameters.
        result = NO if attrs or "__init__" not in cls.methods else UNKNOWN
        for value in attrs.values():
            if value.kind is Kind.MODULE:
                result = result | value.has_params
            elif value.kind is Kind.TENSOR and value.layer == "buffer":
                continue
            elif value.kind is Kind.TENSOR:
                # An nn.Parameter attribute (a leaf that requires grad) is a parameter.
                result = result | (value.requires_grad if value.leaf is YES else UNKNOWN)
            elif value.kind is Kind.SEQUENCE and value.item is not None:
                # Layers in a plain list are not registered: they add no parameters.
                result = result | (NO if value.item.kind is Kind.MODULE else UNKNOWN)
            elif value.kind is Kind.UNKNOWN or (
                value.cls is not None and self.layer_subclass(value.cls)
            ):
                # (An object of a class of the file's that extends one of PyTorch's layers,
                # `class CastLinear(nn.Linear)`: its base makes the parameters.)
                result = result | UNKNOWN
        # An nn.Sequential subclass has the parameters of the layers it hands to Sequential.
        layers = self.class_layers.get(cls.name)
        if layers is not None:
            result = result if attrs else NO
            for layer in layers:
                result = result | (layer.has_params if layer.kind is Kind.MODULE else UNKNOWN)
        for base in cls.bases:
            local = self.scopes.classes.get(base)
            if local is not None and local is not cls:
                result = result | self.class_has_params(local)
            elif base and resolve_dotted(self.imports, base) not in (
                "torch.nn.Module",
                "torch.nn.Sequential" if layers is not None else "torch.nn.Module",
                None,
            ):
                result = result | UNKNOWN
        return result

    def frozen_site(self, module: Value, state: State) -> object:
        """Where a frozen module was frozen: as the code here froze it, or as it came in."""
        here = self.frozen_where(module.path, state) if module.path else None
        return here if here is not None else module.cut

    def frozen_where(self, path: str, state: State) -> cst.CSTNode | None:
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            at = state.frozen_at.get(".".join(parts[:end]))
            if at is not None:
                return at
        # Frozen layer by layer (`model[0]`, then `model[2]`): the last of those freezes.
        prefix = path + "."
        children = [at for key, at in state.frozen_at.items() if key.startswith(prefix)]
        return children[-1] if children else None

    def frozen_of(self, path: str, state: State) -> Tri | None:
        """Whether every parameter under `path` is frozen; None where nothing was said."""
        result: Tri | None = None
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            key = ".".join(parts[:end])
            if key in state.frozen:
                result = state.frozen[key]
                break
        prefix = path + "."
        children = [v for k, v in state.frozen.items() if k.startswith(prefix)]
        if result is None:
            return UNKNOWN if children else None
        if any(child is not result for child in children):
            return UNKNOWN
        return result

    def with_frozen(self, value: Value, state: State) -> Value:
        """A module or parameter as frozen as the freezing statements so far left it."""
        if value.path is None or not state.frozen:
            return value
        frozen = self.frozen_of(value.path.removesuffix(".*"), state)
        if frozen is UNKNOWN and value.kind is Kind.MODULE and value.items is not None:
            # Layers frozen one by one (`model[0]`, `model[2]`): all of them, or not.
            frozen = self.frozen_by_layers(value.path, value.items, state)
        if frozen is UNKNOWN and value.kind is Kind.PARAMS and value.frozen is YES:
            frozen = YES  # the module said so, layer by layer
        if frozen is None:
            return value
        if value.kind is Kind.MODULE:
            frozen_at = self.frozen_where(value.path.removesuffix(".*"), state)
            cut = frozen_at if frozen is YES and frozen_at is not None else value.cut
            return value.with_(frozen=frozen, cut=cut)
        if value.kind is Kind.PARAMS:
            item = value.item
            if item is not None and item.kind is Kind.TENSOR:
                item = item.with_(requires_grad=frozen.negate())
            return value.with_(frozen=frozen, item=item)
        if value.kind is Kind.TENSOR and value.leaf is YES:
            return value.with_(requires_grad=frozen.negate())
        return value

    def frozen_by_layers(self, path: str, layers: tuple[Value, ...], state: State) -> Tri:
        """Whether every layer with parameters, at `path.0`, `path.1`, ..., is frozen."""
        result: Tri = YES
        for index, layer in enumerate(layers):
            if layer.kind is Kind.MODULE and layer.has_params is NO:
                continue
            frozen = self.frozen_of(f"{path}.{index}", state)
            if frozen is not YES:
                result = NO if frozen is NO else UNKNOWN
                if result is NO:
                    return NO
        return result

    def set_field(self, name: str, key: str, value: Value, state: State) -> None:
        holder = state.env[name]
        assert holder.fields is not None
        fields = tuple((k, value if k == key else v) for k, v in holder.fields)
        item = value if holder.item is None else holder.item.join(value)
        state.env[name] = holder.with_(fields=fields, item=item)

    def unfreeze_parents(self, path: str, wanted: Tri, state: State) -> None:
        # Making part of a frozen module trainable means it is no longer wholly frozen.
        if wanted is not YES:
            return
        parts = path.split(".")
        for end in range(1, len(parts)):
            parent = ".".join(parts[:end])
            if state.frozen.get(parent) is YES:
                state.frozen[parent] = NO

    def update_class_attr(self, key: str, value: Value) -> None:
        """`self.x = ...` (or `self.x.append(...)`) in any method changes what `x` can hold."""
        if not key.startswith("self.") or key.count(".") != 1 or self._function is None:
            return
        owner = self._function.owner
        if owner is None:
            return
        attrs = self.class_attrs.setdefault(owner.name, {})
        name = key[5:]
        attrs[name] = attrs[name].join(value) if name in attrs else value

    # -- freezes, unfreezes and the optimizers they affect -------------------------------------

    def tick_clock(self) -> int:
        """The one clock that orders graph nodes, backwards, steps, freezes and module
        calls."""
        self._tick += 1
        return self._tick

    def trained(self) -> None:
        """A backward() or an optimizer step: training happened now."""
        self._trained_at = self.tick_clock()

    def context(self) -> frozenset[int]:
        """The branches of `if`s and the loops (not loops over parameters) the running
        code is inside, in its function and its callers."""
        loops = [loop for loop in self._loops if not self.over_parameters(loop)]
        return frozenset((*self._branches, *(id(loop) for loop in loops)))

    def over_parameters(self, loop: cst.CSTNode) -> bool:
        return type(loop) is cst.For and self.facts.value(loop.iter).kind is Kind.PARAMS

    def parameter_loops(self) -> frozenset[int]:
        """The loops over parameters running: each pass sets one parameter's flag."""
        return frozenset(id(loop) for loop in self._loops if self.over_parameters(loop))

    def note_freeze(
        self,
        path: str | None,
        wanted: Tri,
        node: cst.CSTNode,
        state: State,
        by_callee: bool = False,
        remade: tuple[str, ...] = (),
    ) -> None:
        """Parameters under `path` set to require grad as `wanted` says, at `node`, before
        `state` records it: a freeze to remember, or an unfreeze that may undo one or that
        optimizers built before it miss. `by_callee`: the callee that `node` calls did
        it, and is still the innermost call running; `remade`: it did so only by making
        these parts of `path` anew."""
        clock = self.tick_clock()
        self.facts.freeze_changes.append(FreezeChange(node, path, wanted.negate(), clock))
        calls = tuple(self._call_path[:-1] if by_callee else self._call_path)
        if wanted is NO:
            self._freeze_runs[id(node)] = FreezeRun(
                clock, self.context(), calls, self.parameter_loops()
            )
            if path is not None:
                self.forget_remade(path)
            return
        if path is None or wanted is not YES:
            return
        self.note_undone(path, node, state, calls, remade)
        self.note_missed(path, node, state, replaced=False)

    def forget_remade(self, path: str) -> None:
        """`path` frozen: parts re-made as trainable at or under it, or above it, were seen
        to by the program (it re-froze what it did not mean to train)."""

        def touches(part: str) -> bool:
            return part == path or part.startswith(path + ".") or path.startswith(part + ".")

        self.facts.freezes_undone[:] = [
            undone
            for undone in self.facts.freezes_undone
            if not any(touches(part) for part in undone.remade)
        ]

    def note_undone(
        self,
        path: str,
        node: cst.CSTNode,
        state: State,
        calls: tuple[object, ...],
        remade: tuple[str, ...] = (),
    ) -> None:
        """`path` made trainable at `node`: each freeze of it, or of a part of it, that
        this undoes wholesale, with nothing trained since and on every path that froze."""
        context = self.context()
        for key, at in self.frozen_under(path, state):
            run = self._freeze_runs.get(id(at))
            if run is None:
                continue
            # Frozen in this run of this code (or in what it called), under every `if`
            # and loop the unfreeze is under: the unfreeze always follows the freeze. Not
            # in the same loop over parameters: an earlier pass froze another parameter.
            if (
                run.clock < max(self._trained_at, self._used_at)
                or not context <= run.context
                or run.calls[: len(calls)] != calls
                or run.parameter_loops & self.parameter_loops()
            ):
                continue
            self.facts.freezes_undone.append(FreezeUndone(node, at, key, remade))

    def frozen_under(self, path: str, state: State) -> list[tuple[str, cst.CSTNode]]:
        """The modules at or under `path` frozen now, or on some paths (a freeze under an
        `if`, of parameters picked by name), and where: by the code here, or by the
        __init__ of the module's class."""
        found = [
            (key, state.frozen_at[key])
            for key, frozen in state.frozen.items()
            if frozen is not NO
            and (key == path or key.startswith(path + "."))
            and key in state.frozen_at
        ]
        module = state.env.get(path)
        cls = module.cls if module is not None and module.kind is Kind.MODULE else None
        for attr, frozen in self.class_frozen_attrs.get(cls or "", {}).items():
            key = f"{path}.{attr}"
            at = self.class_frozen_at.get(cls or "", {}).get(attr)
            if frozen is YES and at is not None and self.frozen_of(key, state) in (None, YES):
                found.append((key, at))
        return found

    def attach(
        self,
        holder: Value,
        holder_expr: cst.BaseExpression,
        name: str | None,
        value: Value,
        statement: cst.CSTNode,
        state: State,
    ) -> None:
        """`value` set on `holder` under `name` (None: an index, a key or a name not known):
        by attribute assignment, `setattr`, `add_module`, item assignment or `append`. On a
        module (`blk.proj = LoraLinear(blk.proj)`, a layer of a frozen model reached by
        iterating over it), it registers what it sets as a child; on something not known
        reached from a module (`net.classifier[6] = ...`, `net.head.fc = ...` where what
        `net.classifier` or `net.head` is is not known), it may."""
        if holder.kind is Kind.MODULE and holder.path is not None:
            self.child_set(f"{holder.path}.{name or '[]'}", value, statement, state)
            return
        if holder.kind is not Kind.UNKNOWN:
            return  # a tensor, a number, a plain container, a config: it registers nothing
        path = self.reached_from_module(holder_expr)
        if path is not None:
            child = f"{path}.{name or '[]'}"
            self.child_set(child, value, statement, state, registered=False)

    def reached_from_module(self, expr: cst.BaseExpression, depth: int = 0) -> str | None:
        """Where below a module an expression whose value is not known may lead: through
        attributes and indexes (`net.head.fc`, `net.classifier[6]`), and through names
        that this function's running loops bind to the parts of a module (`for m in
        model.modules()`, `for block in model.children(): for layer in block`). `[]`
        stands for an index, a key or a part not known."""
        found = self.facts.value(expr)
        if found.kind is Kind.MODULE and found.path is not None:
            return found.path
        if found.kind is not Kind.UNKNOWN or depth > 8:
            return None
        if isinstance(expr, (cst.Attribute, cst.Subscript)):
            base = self.reached_from_module(expr.value, depth + 1)
            if base is None:
                return None
            return f"{base}.{expr.attr.value if isinstance(expr, cst.Attribute) else '[]'}"
        if type(expr) is not cst.Name:
            return None
        first = self._frames[-1].loops if self._frames else 0
        for loop in reversed(self._loops[first:]):
            if type(loop) is not cst.For or expr.value not in _bound_names(loop.target):
                continue
            it = loop.iter
            while (  # `list(model.modules())`, `enumerate(model.children())`
                type(it) is cst.Call
                and type(it.func) is cst.Name
                and it.func.value in _WRAPPING_ITERATORS
                and it.args
            ):
                it = it.args[0].value
            if (
                type(it) is cst.Call
                and type(it.func) is cst.Attribute
                and it.func.attr.value in _SUBMODULE_ITERATORS
            ):
                it = it.func.value
            base = self.reached_from_module(it, depth + 1)
            return f"{base}.[]" if base is not None else None
        return None

    def child_set(
        self,
        child: str,
        value: Value,
        statement: cst.CSTNode,
        state: State,
        registered: bool = True,
    ) -> None:
        """A module set as the child at `child` (an attribute, or an index of a container):
        if it may have trainable parameters, they train, so the modules above it are wholly
        frozen no more; not `registered` for sure, they may be. A value that is not known
        (it may be a module: `build_head(cfg)`), or a parameter that may train, set under
        modules the code here froze wholly, leaves them not known to be wholly frozen."""
        if value.kind is not Kind.MODULE:
            parts = child.split(".")
            parents = [".".join(parts[:end]) for end in range(1, len(parts))]
            if not any(state.frozen.get(parent) is YES for parent in parents):
                return  # nothing said to be wholly frozen above it: nothing to take back
            if value.kind is Kind.UNKNOWN:
                registered = False
            elif value.parameter and value.requires_grad is not NO:
                for parent in parents:  # the parameter itself is as its flag says
                    if state.frozen.get(parent) is YES:
                        state.frozen[parent] = UNKNOWN
                return
            else:
                return  # a tensor, a number, a string, a plain list: it registers nothing
        elif value.has_params is NO or value.frozen is YES:
            return
        if not registered:
            parts = child.split(".")
            parents = [".".join(parts[:end]) for end in range(1, len(parts))]
            below = [v for k, v in state.frozen.items() if k == child or k.startswith(child + ".")]
            if not any(state.frozen.get(p) is YES for p in parents) and YES not in below:
                return  # nothing said to be wholly frozen there: nothing to take back
            state.frozen[child] = UNKNOWN
            for parent in parents:
                if state.frozen.get(parent) is YES:
                    state.frozen[parent] = UNKNOWN
            return
        if value.path is None and value.has_params is YES:
            # A new layer: optimizers built before it do not have its parameters.
            self.note_missed(child, statement, state, replaced=True)
            if self._frames:
                self._frames[-1].remade.add(child)
        state.frozen[child] = NO
        self.unfreeze_parents(child, YES, state)

    def note_missed(self, path: str, node: cst.CSTNode, state: State, replaced: bool) -> None:
        """Parameters under `path` became trainable at `node` (unfrozen, or a new layer):
        the optimizers here that were built without them miss them from now on."""
        for value in list(state.env.values()):
            if value.kind is not Kind.OPTIMIZER or value.origin is None:
                continue
            made = self._optimizers_made.get(value.origin)
            if made is None:
                continue
            if replaced:
                hit = any(path == root or path.startswith(root + ".") for root in made.roots)
            else:
                hit = made.trainable_only and self.left_out(path, made, state)
            if hit:
                self._missed[value.origin] = (node, replaced)

    def left_out(self, path: str, made: BuiltOptimizer, state: State) -> bool:
        """Whether an optimizer that kept only trainable parameters left out some under
        `path`: frozen when it was built, as it saw them, or (built in a call that did not
        know of the freeze) frozen here since before it was built."""
        if any(_overlap(path, part) for part in made.frozen_parts):
            return True
        if not any(_overlap(path, root) for root in made.roots):
            return False
        frozen = self.frozen_under(path, state)
        if self.frozen_of(path, state) is YES:
            at = self.frozen_where(path, state)
            frozen.extend([(path, at)] if at is not None else [])
        for _, at in frozen:
            run = self._freeze_runs.get(id(at))
            if run is not None and run.clock < made.clock:
                return True
        return False

    def optimizer_built(self, node: cst.Call, given: Value, state: State) -> OptimizerParts:
        """An optimizer built at `node` over `given`: remembered, with the parts of the
        given modules that are frozen now."""
        parts = self.frozen_parts(given, state)
        origin = id(node)
        paths = frozenset(path for path, _ in parts)
        clock = self.tick_clock()
        self._optimizers_made[origin] = BuiltOptimizer(
            node, given.roots, given.trainable_only, paths, clock
        )
        self._missed.pop(origin, None)
        return parts, clock, self.covered_by(given, state)

    def optimizer_rebuilt(self, value: Value) -> None:
        """A remembered call that built an optimizer, not run again: it builds it anew,
        over the parameters as they are now."""
        if value.kind is Kind.OPTIMIZER and value.origin in self._optimizers_made:
            self._missed.pop(value.origin, None)

    def covered_by(self, given: Value, state: State) -> frozenset[str]:
        """The modules an optimizer given `given` holds the parameters of: the roots,
        and the modules each of them was made from."""
        covered = set(given.roots)
        for root in given.roots:
            module = state.env.get(root)
            if module is not None and module.kind is Kind.MODULE:
                covered |= module.wraps
        return frozenset(covered)

    def optimizer_stepped(self, optimizer: Value, node: cst.CSTNode) -> None:
        self.trained()
        missed = self._missed.get(optimizer.origin) if optimizer.origin is not None else None
        made = self._optimizers_made.get(optimizer.origin) if optimizer.origin else None
        if missed is not None and made is not None:
            at, replaced = missed
            self.facts.params_missed.append(ParamsMissed(at, made.node, node, replaced))

    def params_added(self, optimizer: Value) -> None:
        """`optimizer.add_param_group(...)`: what it missed may be given to it now."""
        if optimizer.origin is not None:
            self._missed.pop(optimizer.origin, None)

    def frozen_parts(
        self, given: Value, state: State
    ) -> tuple[tuple[str, cst.CSTNode | None], ...]:
        """The modules under `given`'s roots whose parameters are all frozen now: as the
        code here froze them, or as their class's __init__ did."""
        found: dict[str, cst.CSTNode | None] = {}
        for root in sorted(given.roots):
            if self.frozen_of(root, state) is YES:
                found[root] = self.frozen_where(root, state)
                continue
            for key, frozen in state.frozen.items():
                if frozen is YES and key.startswith(root + "."):
                    found[key] = state.frozen_at.get(key)
            module = state.env.get(root)
            cls = module.cls if module is not None and module.kind is Kind.MODULE else None
            for attr, frozen in self.class_frozen_attrs.get(cls or "", {}).items():
                key = f"{root}.{attr}"
                if frozen is YES and self.frozen_of(key, state) in (None, YES):
                    found.setdefault(key, self.class_frozen_at.get(cls or "", {}).get(attr))
        return tuple(found.items())


@dataclass(frozen=True)
class FreezeRun:
    """A freeze as it last ran."""

    clock: int
    context: frozenset[int]  # the branches and loops around it
    calls: tuple[object, ...]  # the calls that led to it
    parameter_loops: frozenset[int]  # the loops over parameters around it


@dataclass(frozen=True)
class BuiltOptimizer:
    node: cst.Call  # where
    roots: frozenset[str]  # the modules whose parameters it was given
    trainable_only: bool  # ... only those that required grad then
    frozen_parts: frozenset[str]  # parts of them frozen then, as far as it knew
    clock: int  # when


# An optimizer built: the frozen parts it was given, when, and the modules it holds.
OptimizerParts = tuple[tuple[tuple[str, "cst.CSTNode | None"], ...], int, frozenset[str]]


_SUBMODULE_ITERATORS = frozenset({"children", "modules", "named_children", "named_modules"})
_WRAPPING_ITERATORS = frozenset({"list", "tuple", "enumerate", "reversed", "sorted"})


def _bound_names(target: cst.BaseExpression) -> frozenset[str]:
    """The names a loop's target binds (`m`, `name, m`, `(i, (n, m))`)."""
    if type(target) is cst.Name:
        return frozenset({target.value})
    if isinstance(target, (cst.Tuple, cst.List)):
        return frozenset().union(*(_bound_names(e.value) for e in target.elements))
    return frozenset()


def _overlap(path: str, other: str) -> bool:
    """Whether one module path is the other or inside it."""
    return path == other or path.startswith(other + ".") or other.startswith(path + ".")
