"""The facts rules query: values, grad modes and events, recorded by one pass over a module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import libcst as cst

from gradlint.analysis.names import ImportTable
from gradlint.analysis.nodes import Parents
from gradlint.analysis.positions import Positions
from gradlint.analysis.values import NO, UNKNOWN, UNKNOWN_VALUE, YES, Node, Tri, Value

if TYPE_CHECKING:  # gradlint.fixes imports this package
    from gradlint.fixes import ModuleText

# A grad mode is the set of modes a point may run in: "E" enabled, "D" disabled
# (no_grad, set_grad_enabled(False)), "I" inference_mode.
Mode = frozenset[str]
ENABLED: Mode = frozenset("E")
DISABLED: Mode = frozenset("D")
INFERENCE: Mode = frozenset("I")
ANY_MODE: Mode = frozenset("EDI")
MAX_OBSERVED = 6  # distinct runs kept per node


@dataclass(frozen=True)
class Call:
    node: cst.Call
    qualname: str | None  # `torch.randn` for `T.randn(...)`; None for methods and locals
    method: str | None  # `numpy` for `x.numpy()`
    receiver: cst.BaseExpression | None  # `x` in `x.numpy()`


@dataclass(frozen=True)
class Inplace:
    """An in-place change: `x.add_(1)`, `x += 1`, `x[0] = 1`, `relu(x, inplace=True)`."""

    node: cst.CSTNode  # what to point at
    target: cst.BaseExpression  # the tensor changed


@dataclass(frozen=True)
class AttributeSet:
    """`obj.attr = value`."""

    node: cst.Assign
    target: cst.Attribute
    value: cst.BaseExpression


@dataclass(frozen=True)
class FreedGraph:
    """A backward that goes through graph nodes an earlier backward already freed."""

    node: cst.Call  # the second backward
    entry: cst.CSTNode | None  # where the freed part was let into a back-propagated graph
    freed_by: cst.CSTNode  # the first backward
    together: bool = False  # both backwards in one step, nothing trained between them


@dataclass(frozen=True)
class SavedChanged:
    """An in-place change of a tensor that an op saved, then a backward through that op."""

    node: cst.CSTNode  # what to change: the in-place op, or the layer built inplace=True
    saved_by: cst.CSTNode  # the op that saved the tensor
    backward: cst.CSTNode
    change: cst.CSTNode  # where the tensor is changed
    stepped: bool = False  # the change is an optimizer step of the weights the op saved


@dataclass(frozen=True)
class OptimizerMade:
    node: cst.Call
    params: cst.BaseExpression | None
    exhausted: bool  # given a `.parameters()` generator that was already used up
    no_parameters: bool = False  # given `.parameters()` of a module that has none yet
    # ... because its layers are kept in a plain list: that assignment.
    unregistered: cst.CSTNode | None = None
    # ... because its constructor is misspelt (`def _init_(self)`): that method.
    misspelt_init: cst.CSTNode | None = None
    # The generator given was used up before: where (a `list()`, a loop, another optimizer).
    used_up_at: cst.CSTNode | None = None
    # ... and the call that made that generator (`filter(...)`, `model.parameters()`).
    generator_made: cst.CSTNode | None = None
    # Modules under the ones it was given whose parameters were all frozen then, and where
    # they were frozen; empty where unknown or where only trainable ones were kept.
    frozen_parts: tuple[tuple[str, cst.CSTNode | None], ...] = ()
    trainable_only: bool = False  # given a list filtered on `p.requires_grad`
    # Given a name: the assignment that made what it holds (`params = list(...)`).
    params_made: cst.CSTNode | None = None
    clock: int = 0  # when, on the clock of freezes, optimizers and training steps
    # The modules whose parameters it was given, and those they wrap (DataParallel's
    # module, a model's sub-modules handed to its constructor); empty where unknown.
    covers: frozenset[str] = frozenset()
    # Given only tensors this code made (an adversarial input, a hand-made weight): it
    # surely covers no module.
    tensors_only: bool = False


@dataclass(frozen=True)
class FreezeChange:
    """Parameters set frozen or trainable: `m.requires_grad_(flag)`, or `p.requires_grad =
    flag` on parameters of a known module (in a loop over them)."""

    node: cst.CSTNode  # the call or statement; a helper's call for what the helper did
    path: str | None  # the module, as named where it ran; None where not known
    frozen: Tri  # YES froze them, NO made them trainable, UNKNOWN either
    clock: int


@dataclass(frozen=True)
class FreezeUndone:
    """Trainable again, wholesale, with nothing trained since they were frozen."""

    node: cst.CSTNode  # the unfreeze
    freeze: cst.CSTNode  # the freeze it undoes
    path: str  # what was frozen
    # The parts a call re-made as new trainable layers (a vocabulary resize), when it
    # did not unfreeze the whole: a later freeze of one of them shows the program saw to it.
    remade: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParamsMissed:
    """An optimizer stepped after parameters it was not given became trainable: a module
    unfrozen after the optimizer kept only trainable ones, or a layer replaced after it
    was built."""

    node: cst.CSTNode  # the unfreeze, or the assignment of the new layer
    optimizer: cst.CSTNode  # where the optimizer was built
    step: cst.CSTNode  # a step that misses them
    replaced: bool  # a new layer, not an unfreeze


@dataclass(frozen=True)
class Trained:
    """A trainable module whose parameters a backward surely reaches."""

    backward: cst.Call
    call: cst.CSTNode  # the call of the module whose output the loss was computed from
    path: str
    family: frozenset[str]  # the path, and the modules it was made from
    known: bool  # a torch.nn layer or a class of this module, not an unknown model
    looped: bool  # the backward runs in a loop (in its function or a caller): training


@dataclass(frozen=True)
class StepMisfire:
    """An optimizer step that applies the wrong gradients: summed over several steps
    (nothing cleared them since the last step), or none (a clear threw them away)."""

    node: cst.CSTNode  # the step
    piled_by: cst.CSTNode | None  # GL201: the backward that added to applied gradients
    cleared_at: cst.CSTNode | None  # the last clear before the step, if any
    recent: bool = False  # GL202: the thrown-away backward ran on this pass


@dataclass(frozen=True)
class ClipMisplaced:
    """Gradient clipping where it changes nothing a step applies: before the backward that
    fills `.grad`, or after the step that applied it."""

    node: cst.CSTNode
    after_step: bool


@dataclass(frozen=True)
class UnregisteredTensor:
    """`self.w = value` in a module's constructor that registers no parameter."""

    node: cst.BaseExpression  # the value assigned
    cls: str  # the module class
    attr: str
    # The op that made a non-leaf copy of a parameter or of a tensor made to require grad
    # (`nn.Parameter(t).double()`); None: a plain tensor made with requires_grad=True.
    moved: object = None


@dataclass(frozen=True)
class UnregisteredLayers:
    """Layers with parameters that a module's constructor keeps in a plain list or dict."""

    node: cst.BaseExpression  # the plain container assigned: `self.layers = []`
    cls: str  # the module class
    attr: str
    added: cst.CSTNode | None = None  # where layers were put in (`self.layers.append(...)`)


@dataclass(frozen=True)
class KeptGraph:
    """A tensor with a graph kept from one iteration of a loop to the next by a running
    total (`total += loss`) or a container (`losses.append(loss)`, `history[k] = loss`):
    every iteration's graph stays alive as long as the accumulator does."""

    node: cst.CSTNode  # the `+=`, the `.append(...)` call, the `d[k] = ...` assignment
    site: int  # the graph site that marks what this statement keeps, in graphs made from it
    # A backward already freed what it kept (the loss was back-propagated on its own): no
    # later backward can go through it again, wherever the accumulator goes.
    freed: bool = False


@dataclass(frozen=True)
class GrowingGraph:
    """A backward that keeps its graph (`retain_graph=True`) on every iteration of a loop
    while that graph reaches tensors made on earlier iterations: it grows without bound."""

    node: cst.CSTNode  # the `retain_graph=True` argument
    backward: cst.Call


@dataclass(frozen=True)
class EvalForward:
    """A call of a model in eval mode while autograd records: validation, inference."""

    # Where to run it without autograd: the model call, or, where the eval mode was set by
    # a caller, that caller's call that led to it (`model.sample()` running `self.decoder`).
    node: cst.CSTNode
    path: str  # the model, as named at the model call
    # The graph sites that mark what the model calls returned: a backward through any of
    # them, or code we cannot follow that got them, may have wanted the graph.
    sites: frozenset[int]
    calls: frozenset[cst.Call]  # the model calls
    set_by: cst.CSTNode | None = None  # the `.eval()` (or the helper call) that set the mode


@dataclass(frozen=True)
class TrainedInEval:
    """A backward through a model's forward run in eval mode, where the eval mode was left
    by an earlier pass of a loop still running (a validation pass in the previous epoch)."""

    # Where to set training mode: the `.eval()` left in force (or the call of the helper
    # that did it), or the loop of the training routine that trains in it.
    node: cst.CSTNode
    left_by: cst.CSTNode  # the `.eval()`, or the call of the helper that did it
    forward: cst.Call  # the model call that ran in eval mode
    backward: cst.CSTNode
    path: str


@dataclass(frozen=True)
class WithItem:
    node: cst.WithItem
    qualname: str  # the grad-mode class, e.g. `torch.no_grad`
    called: bool


@dataclass
class Facts:
    module: cst.Module
    imports: ImportTable = field(default_factory=ImportTable)
    values: dict[cst.CSTNode, Value] = field(default_factory=dict)
    observed: dict[cst.CSTNode, list[tuple[Value, Mode]]] = field(default_factory=dict)
    modes: dict[cst.CSTNode, Mode] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    statement_calls: list[Call] = field(default_factory=list)  # calls that are a whole statement
    inplace: list[Inplace] = field(default_factory=list)
    attribute_sets: list[AttributeSet] = field(default_factory=list)
    freed_graphs: list[FreedGraph] = field(default_factory=list)
    saved_changes: list[SavedChanged] = field(default_factory=list)
    # ... changed through `.data`, which autograd does not notice: wrong gradients, no error.
    hidden_changes: list[SavedChanged] = field(default_factory=list)
    optimizers: list[OptimizerMade] = field(default_factory=list)
    freeze_changes: list[FreezeChange] = field(default_factory=list)
    freezes_undone: list[FreezeUndone] = field(default_factory=list)
    params_missed: list[ParamsMissed] = field(default_factory=list)
    trained: list[Trained] = field(default_factory=list)
    with_items: list[WithItem] = field(default_factory=list)
    # Steps that apply gradients summed since an earlier step (GL201), or none (GL202).
    piled_steps: list[StepMisfire] = field(default_factory=list)
    empty_steps: list[StepMisfire] = field(default_factory=list)
    misplaced_clips: list[ClipMisplaced] = field(default_factory=list)
    # A clear that, on some path, throws away gradients of a backward that reached the
    # optimizer's parameters and that no step applied -> those optimizers (their origins).
    pending_clears: dict[cst.CSTNode, set[int]] = field(default_factory=dict)
    # ... of those, the ones that ran, inside the innermost loop, under a test of their own
    # (`if i % k == 0: zero_grad()`, or after an `if ...: continue`): a clear that starts
    # each accumulation window, which cannot be shown to fall between backwards a step sums.
    guarded_clears: set[cst.CSTNode] = field(default_factory=set)
    # Optimizer (origin) -> for each step: the names its loop changes that a test guarding
    # it reads (gradient accumulation counts with them); empty for an unguarded step.
    step_guards: dict[int, set[frozenset[str]]] = field(default_factory=dict)
    # Where a value cut from its graph was made to require grad again -> where it was cut.
    revivals: dict[cst.CSTNode, object] = field(default_factory=dict)
    # ... of those, the ones then given to an optimizer, as leaves to train.
    revived_as_leaves: set[cst.CSTNode] = field(default_factory=set)
    # A backward of such a value: (where it was made to require grad, the backward).
    revived_backwards: list[tuple[cst.CSTNode, cst.CSTNode]] = field(default_factory=list)
    # A backward of a policy-gradient loss whose weight (an advantage) has a graph of its
    # own: (where the weight was made, the backward).
    policy_weights: list[tuple[cst.CSTNode, cst.CSTNode]] = field(default_factory=list)
    # (class, attribute) -> the reads of `self.<attribute>`, a parameter, in that class's
    # methods (not __init__) while autograd records.
    param_reads: dict[tuple[str, str], set[cst.CSTNode]] = field(default_factory=dict)
    # The tensors whose `.data` a forward reads (`self.weight` in `self.weight.data`).
    data_reads: set[cst.CSTNode] = field(default_factory=set)
    # A bootstrapped target with a graph through the network it trains (a TD target not
    # detached) -> the backward of a loss made from it.
    leaky_targets: list[tuple[cst.CSTNode, cst.CSTNode]] = field(default_factory=list)
    # A backward of a loss with a term computed from a cut prediction: (the cut, backward).
    dead_terms: list[tuple[cst.CSTNode, cst.CSTNode]] = field(default_factory=list)
    # `.detach()` straight on a model's output made while autograd records.
    detached_forwards: dict[cst.Call, None] = field(default_factory=dict)  # (ordered set)
    # Model calls whose outputs went only into a bootstrapped target (`reward + gamma *
    # target_net(s2)`) that was then detached (an ordered set).
    detached_targets: dict[cst.Call, None] = field(default_factory=dict)
    # A backward of a loss holding a gradient penalty made without `create_graph`:
    # (the `torch.autograd.grad` call, the backward).
    penalties_without_graph: list[tuple[object, cst.CSTNode]] = field(default_factory=list)
    kept_graphs: dict[cst.CSTNode, KeptGraph] = field(default_factory=dict)
    # Graph sites that some backward went through, or that reached code the analysis does
    # not follow (returned to an unknown caller, handed to an unknown function, stored on
    # an object): whatever holds them may be back-propagated.
    propagated_sites: set[int] = field(default_factory=set)
    growing_graphs: dict[cst.CSTNode, GrowingGraph] = field(default_factory=dict)
    # Graph sites handed to code the analysis does not follow (returned to an unknown caller,
    # stored on an object, passed to an unknown call).
    escaped_sites: set[int] = field(default_factory=set)
    # A backward with retain_graph=True in a loop -> the graph nodes it kept; and those of
    # them that a later backward went through.
    retained_graphs: dict[cst.Call, frozenset[Node]] = field(default_factory=dict)
    retained_used: set[cst.Call] = field(default_factory=set)
    # Model calls (outside a forward) that ran while autograd records -> the join of the
    # model's train/eval mode over those runs (YES training, NO eval).
    forward_modes: dict[cst.Call, Tri] = field(default_factory=dict)
    eval_forwards: dict[cst.CSTNode, EvalForward] = field(default_factory=dict)
    # (Only where the code applies gradients: `applies_gradients`.)
    trained_in_eval: dict[cst.CSTNode, TrainedInEval] = field(default_factory=dict)
    # Ops that save an inference tensor for backward, and where that tensor was made.
    inference_saved: list[tuple[cst.CSTNode, object]] = field(default_factory=list)
    attributes_read: set[str] = field(default_factory=set)  # attribute names ever loaded
    # A freeze (or unfreeze) that is the whole body of a loop over parameters -> that loop.
    freeze_loops: dict[cst.CSTNode, cst.For] = field(default_factory=dict)
    # A backward() call -> the calls that led to it, outermost first, each time it ran.
    backward_paths: dict[cst.CSTNode, set[tuple[cst.Call, ...]]] = field(default_factory=dict)
    # A backward() call -> the `if` tests it ran under, in its function and its callers.
    backward_conditions: dict[cst.CSTNode, set[cst.BaseExpression]] = field(default_factory=dict)
    # `self.w = ...` in module constructors that leave a tensor meant to train unregistered.
    unregistered_tensors: list[UnregisteredTensor] = field(default_factory=list)
    # `x.grad` reads -> the tensor `x` on each run. Its `moved` is kept only where no name
    # holds the leaf it was copied from any more.
    grad_reads: dict[cst.Attribute, list[Value]] = field(default_factory=dict)
    # Whether `.grad` is read of something not known to be a tensor (a weight, maybe).
    grad_read_unknown: bool = False
    unregistered_layers: list[UnregisteredLayers] = field(default_factory=list)
    # Tensors (identity or graph-node sites) that `retain_grad()` was called on; and
    # whether it was called on one whose identity is not known.
    retained: set[int] = field(default_factory=set)
    retained_unknown: bool = False
    # The function (a scopes.FunctionInfo; None: module level) each call or statement is in.
    scope: dict[cst.CSTNode, object] = field(default_factory=dict)
    _positions: Positions | None = None
    _text: ModuleText | None = None
    _parents: Parents | None = None

    @property
    def parents(self) -> Parents:
        """Each node's parent, for fixes that need a node's surroundings."""
        if self._parents is None:
            self._parents = Parents(self.module)
        return self._parents

    def parsed_from(self, source: str) -> None:
        """The source the module was parsed from: its code, without generating it again."""
        from gradlint.fixes import ModuleText

        self._text = ModuleText(self.module, source)

    @property
    def text(self) -> ModuleText:
        """The module's code and lines, generated once for all the fixes that need them."""
        if self._text is None:
            from gradlint.fixes import ModuleText

            self._text = ModuleText(self.module)
        return self._text

    def value(self, expr: cst.CSTNode) -> Value:
        return self.values.get(expr, UNKNOWN_VALUE)

    def mode(self, node: cst.CSTNode) -> Mode:
        return self.modes.get(node, ANY_MODE)

    def grad_enabled(self, node: cst.CSTNode) -> Tri:
        """YES where autograd surely records, NO where it surely does not."""
        mode = self.mode(node)
        if mode == ENABLED:
            return YES
        if "E" not in mode:
            return NO
        return UNKNOWN

    def kept_unpropagated(self) -> list[KeptGraph]:
        """Accumulators of graph tensors whose contents no backward ever goes through (or
        can go through: a backward already freed them)."""
        return [
            kept
            for kept in self.kept_graphs.values()
            if kept.freed or kept.site not in self.propagated_sites
        ]

    def where_to_fix(self, cause: object, use: cst.CSTNode) -> cst.CSTNode:
        """Where to report a tensor made wrong at `cause` (a no_grad block, a decorator, a
        detach) and misused at `use`: at the cause when it is a decorator, in the same
        function as the use, or still in force at the use; otherwise (a result returned
        from a function that rightly ran without grad) at the use."""
        if not isinstance(cause, cst.CSTNode):
            return use
        if type(cause) is cst.Decorator or self.grad_enabled(use) is NO:
            return cause
        if not isinstance(cause, (cst.With, cst.Expr)):
            return cause  # a `.detach()`, `.data`, argmax, factory: that line is the mistake
        if cause in self.scope and self.scope.get(cause) is self.scope.get(use, False):
            return cause
        return use

    def in_forward(self, node: cst.CSTNode) -> bool:
        """Whether a call or statement is in the `forward` of an `nn.Module` subclass."""
        function = self.scope.get(node)
        owner = getattr(function, "owner", None)
        return getattr(function, "name", None) == "forward" and getattr(owner, "is_module", False)

    def flag_ruled_out(self, node: cst.CSTNode, expr: cst.BaseExpression) -> bool:
        """Whether `node` runs only where `expr` does not require grad, by a test around it:
        the body of `if not x.requires_grad:` (or of `... if not x.requires_grad else ...`),
        the other branch of `if x.requires_grad:`."""
        text = self.module.code_for_node(expr)
        inner: cst.CSTNode = node
        for above in self.parents.ancestors(node):
            if isinstance(above, (cst.If, cst.IfExp)):
                if inner is above.body:
                    wanted = False
                elif inner is above.orelse:
                    wanted = True
                else:
                    inner = above
                    continue
                test, negated = above.test, False
                while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
                    test, negated = test.expression, not negated
                if (
                    isinstance(test, cst.Attribute)
                    and test.attr.value == "requires_grad"
                    and negated is not wanted
                    and self.module.code_for_node(test.value) == text
                ):
                    return True
            inner = above
        return False

    def is_parameter(self, expr: cst.CSTNode, at: cst.CSTNode) -> bool:
        """Whether `expr` names a parameter of the function that `at` is in: a value the
        caller handed in."""
        function = self.scope.get(at)
        node = getattr(function, "node", None)
        if type(expr) is not cst.Name or type(node) is not cst.FunctionDef:
            return False
        params = node.params
        names = (*params.posonly_params, *params.params, *params.kwonly_params)
        return any(param.name.value == expr.value for param in names)

    def with_freeze_loop(self, node: cst.CSTNode) -> list[cst.CSTNode]:
        """A freeze to report, and the loop over parameters that it is the body of: which
        line to change (what is frozen, or whether) depends on the intent."""
        loop = self.freeze_loops.get(node)
        return [loop, node] if loop is not None else [node]

    def grad_read(self, **marks: object) -> bool:
        """Whether the code reads `.grad` of a tensor with these marks (`born=call`: made
        there; `revived=node`): it wanted that tensor's gradient."""
        return any(
            all(getattr(tensor, mark) is node for mark, node in marks.items())
            for runs in self.grad_reads.values()
            for tensor in runs
        )

    def applies_gradients(self) -> bool:
        """Whether the code may change weights by their gradients: it builds an optimizer,
        calls a `.step()` (of an optimizer handed in, a grad scaler, an engine), or reads
        the `.grad` of a tensor other than one it made require grad itself (a weight
        updated by hand). A backward alone only fills `.grad`: one whose gradients are
        wanted of an input (a saliency map, an adversarial example) trains nothing."""
        if self.optimizers or self.grad_read_unknown:
            return True
        if any(call.method == "step" for call in self.calls):
            return True
        return any(
            tensor.grad_leaf is None or tensor.parameter
            for runs in self.grad_reads.values()
            for tensor in runs
        )

    def may_retain_grad(self, value: Value) -> bool:
        """Whether `retain_grad()` may have been called on this tensor, so that backward
        fills its `.grad` though it is not a leaf."""
        sites = {n[0] for n in (value.node, value.head) if n is not None}
        if not sites:
            return self.retained_unknown or bool(self.retained)
        return self.retained_unknown or bool(sites & self.retained)

    @staticmethod
    def focus(node: cst.CSTNode) -> cst.CSTNode:
        """The part of an op to point at: the operator of `a * b`, the method name of
        `x.double()` (the right line when the expression spans several)."""
        if type(node) is cst.BinaryOperation:
            return node.operator
        if type(node) is cst.Call and type(node.func) is cst.Attribute:
            return node.func.attr
        return node

    def position(self, node: cst.CSTNode) -> tuple[int, int, int, int]:
        """1-based (line, column, end_line, end_column); computed only when a rule reports."""
        if self._positions is None:
            self._positions = Positions(self.module, self.parents)
        return self._positions.of(node)

    def record(self, node: cst.CSTNode, value: Value, mode: Mode = ANY_MODE) -> Value:
        # `values` holds what is true on every run of the node (loop passes, calls);
        # `observed`, what each run saw, with the grad mode it ran in.
        runs = self.observed.get(node)
        if runs is None:  # most nodes run once: no join, no search
            self.observed[node] = [(value, mode)]
            self.values[node] = value
            return value
        old = self.values[node]
        if old is not value:
            self.values[node] = old.join(value)
        for seen, seen_mode in runs:
            if seen is value and seen_mode == mode:
                return value
        if len(runs) < MAX_OBSERVED and (value, mode) not in runs:
            runs.append((value, mode))
        return value

    def runs(self, node: cst.CSTNode) -> list[tuple[Value, Mode]]:
        """What each run of the node saw (a loop's later pass, another call), and its mode.
        A misuse in any one run is a misuse: that run happens."""
        return self.observed.get(node) or [(UNKNOWN_VALUE, ANY_MODE)]

    def any_run(self, node: cst.CSTNode) -> list[Value]:
        return [value for value, _ in self.runs(node)]

    def record_mode(self, node: cst.CSTNode, mode: Mode) -> None:
        old = self.modes.get(node)
        self.modes[node] = mode if old is None else old | mode
