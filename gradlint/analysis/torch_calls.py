"""Calls of torch, of Python builtins and of methods on tensors, modules, optimizers and
containers: factories, layers, optimizers, data loaders, and tensor methods by what they do
to grad.
"""

from __future__ import annotations

import libcst as cst

from gradlint.analysis import torch_api as api
from gradlint.analysis.facts import (
    ENABLED,
    INFERENCE,
    EvalForward,
    Inplace,
    OptimizerMade,
)
from gradlint.analysis.graphs import GraphTracking, _holds_graph_tensor, _marked
from gradlint.analysis.names import dotted, resolve_dotted
from gradlint.analysis.scopes import (
    grad_mode_of,
)
from gradlint.analysis.state import State
from gradlint.analysis.syntax import (
    _bool_literal,
    _field_names,
    _is_requires_grad_test,
    _literal_integer,
    _string_key,
)
from gradlint.analysis.train_modes import TrainMode, forget_mode, mode_of, note_evaluated
from gradlint.analysis.value_ops import (
    _INIT_MISSPELLINGS,
    _SAVING_NORMS,
    MODULE_METHODS,
    _grad_of,
    _inference_in,
    _number_dtype,
    _pair,
    _parameter,
    _split_args,
    _tensor_args,
    _without_unknown_target,
)
from gradlint.analysis.values import (
    FLOAT,
    INT,
    NO,
    NONE,
    NUMBER,
    OTHER,
    UNKNOWN,
    UNKNOWN_VALUE,
    YES,
    Kind,
    Tri,
    Value,
    sequence,
)

# Methods that may set a layer as a child of the object they are called on.
_GRAD_MODE_TESTS = {"torch.is_grad_enabled": ENABLED, "torch.is_inference_mode_enabled": INFERENCE}
_ATTACHING = frozenset({"add_module", "register_module", "append", "extend", "insert"})


class TorchCalls(GraphTracking):
    def builtin_call(self, name: str, node: cst.Call, args: list[Value], state: State) -> Value:
        if name in ("list", "tuple", "sorted", "reversed", "set"):
            if args:
                item = self.iterate(args[0], state, node.args[0].value)
                return Value(
                    kind=Kind.SEQUENCE,
                    item=item,
                    roots=args[0].roots,
                    trainable_only=args[0].trainable_only,
                )
            return Value(kind=Kind.SEQUENCE)
        if name == "filter" and len(args) == 2:
            item = self.iterate(args[1], state, node.args[1].value)
            if _is_requires_grad_test(node.args[0].value) and item.requires_grad is NO:
                frozen_at = (
                    self.frozen_where(item.path.removesuffix(".*"), state) if item.path else None
                )
                return Value(kind=Kind.SEQUENCE, items=(), cut=frozen_at)
            # The parameters that requires_grad keeps are still the given modules'.
            kept = _is_requires_grad_test(node.args[0].value)
            roots = args[1].roots if kept else frozenset()
            if args[1].kind is Kind.PARAMS:  # filtering a generator gives a one-shot iterator
                state.exhausted = state.exhausted - {id(node)}  # a new one on each run
                self._generators_made[id(node)] = node
                return Value(
                    kind=Kind.PARAMS, item=item, origin=id(node), roots=roots, trainable_only=kept
                )
            return Value(kind=Kind.SEQUENCE, item=item, roots=roots, trainable_only=kept)
        if name in ("len", "int", "float", "round", "abs", "bool", "str", "repr", "print"):
            if name == "abs" and args and args[0].kind is Kind.TENSOR:
                return self.op_result(args, node, state, "abs")
            if name in ("len", "int") or (name == "round" and len(args) == 1):
                return INT
            if name == "float":
                return FLOAT.with_(cut=args[0].cut) if args and args[0].cut is not None else FLOAT
            if name in ("round", "abs") and args and args[0].kind is Kind.NUMBER:
                return args[0]
            return NUMBER if name == "round" else OTHER
        if name in ("zip", "enumerate"):
            pairs = zip(args, node.args, strict=False)
            items = [self.iterate(arg, state, a.value) for arg, a in pairs]
            if name == "enumerate":
                items = [INT, *items[:1]]
            return Value(kind=Kind.SEQUENCE, item=sequence(items, fixed=True))
        if name == "range":
            return Value(kind=Kind.SEQUENCE, item=INT)
        if name == "dict" and all(arg.keyword is not None for arg in node.args):
            fields = self.keyword_fields(node, args)
            return Value(
                kind=Kind.MAPPING, item=sequence([v for _, v in fields]).item, fields=fields
            )
        if name in ("max", "min") and len(args) > 1 and all(a.kind is Kind.NUMBER for a in args):
            return sequence(args).item or NUMBER
        if name in ("sum", "max", "min") and args and args[0].kind is Kind.SEQUENCE:
            item = args[0].item or UNKNOWN_VALUE
            if item.kind is Kind.NUMBER:
                return item
            return self.op_result([item], node, state, "add")
        if name == "setattr" and self._function is not None and self._function.owner:
            self.dynamic_classes.add(self._function.owner.name)
        if name == "setattr" and len(args) == 3:
            # `setattr(layer, name, LoraLinear(...))`: as `layer.<name> = ...`.
            statement = self._statement if self._statement is not None else node
            attr = args[1].text
            self.attach(args[0], node.args[0].value, attr, args[2], statement, state)
        if name == "isinstance" and len(args) == 2:
            return Value(kind=Kind.OTHER, truth=self.is_instance(args[0], node.args[1].value))
        if name == "getattr" and len(args) >= 2:
            return self.named_attribute(node, args, state)
        if name in ("isinstance", "hasattr", "callable", "setattr", "id", "type"):
            return OTHER
        return UNKNOWN_VALUE

    def flag_of(self, expr: cst.BaseExpression) -> Tri:
        """A boolean argument: a literal, or a name whose value is known (`parametrize`)."""
        literal = _bool_literal(expr)
        return literal if literal is not UNKNOWN else self.facts.value(expr).truth

    def named_attribute(self, node: cst.Call, args: list[Value], state: State) -> Value:
        """`getattr(nn, "ReLU")`, `getattr(model, name)` with the name known."""
        name = args[1].text
        if args[0].is_tensor and name in api.TENSOR_INFO_ATTRIBUTES:
            return OTHER  # `getattr(t, "grad_fn", None)`: reads, and keeps, no values
        base = dotted(node.args[0].value)
        if name is None or base is None:
            return UNKNOWN_VALUE
        namespace = resolve_dotted(self.imports, base)
        if namespace is not None and namespace.split(".")[0] == "torch" and base not in state.env:
            ref = self.ref_of(f"{namespace}.{name}")
            return ref if ref is not None else UNKNOWN_VALUE
        key = f"{base}.{name}"
        if key in state.env:
            return state.env[key]
        if args[0].cls is not None and args[0].kind in (Kind.OTHER, Kind.MODULE):
            # `getattr(module, "automatic_optimization", True)`: a flag its class sets.
            return self.class_constant(args[0].cls, name) or UNKNOWN_VALUE
        return UNKNOWN_VALUE

    def is_instance(self, value: Value, classes: cst.BaseExpression) -> Tri:
        """`isinstance(x, torch.Tensor)`, `(list, tuple)`, `nn.Module`, where x's kind is
        known."""
        if type(classes) is cst.Tuple:
            result = NO
            for element in classes.elements:
                result = result | self.is_instance(value, element.value)
            return result
        qualname = self.imports.resolve(classes)
        name = classes.value if type(classes) is cst.Name else None
        legacy = (qualname or "").removeprefix("torch.")
        if legacy in api.LEGACY_CONSTRUCTORS and legacy != "Tensor" and value.is_tensor:
            # `isinstance(x, torch.LongTensor)`: the dtype decides (on the CPU).
            wanted = api.LEGACY_CONSTRUCTORS[legacy]
            if value.integer is UNKNOWN or wanted is NO:
                return UNKNOWN  # float, double and half all look alike here
            return YES if value.integer is YES else NO
        kind = {
            "torch.Tensor": Kind.TENSOR,
            "torch.nn.Module": Kind.MODULE,
            "torch.nn.modules.module.Module": Kind.MODULE,
        }.get(qualname or "")
        if kind is None and name is not None and name not in self.module_env:
            kind = {"list": Kind.SEQUENCE, "tuple": Kind.SEQUENCE, "dict": Kind.MAPPING}.get(name)
        known = (Kind.TENSOR, Kind.MODULE, Kind.SEQUENCE, Kind.MAPPING, Kind.NUMBER, Kind.ARRAY)
        if kind is None or value.kind not in known:
            return UNKNOWN
        if value.kind is kind is Kind.SEQUENCE:
            return UNKNOWN  # a list and a tuple look alike here
        return YES if value.kind is kind else NO

    def qualified_call(
        self, qualname: str, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        module, _, name = qualname.rpartition(".")
        kwargs = {arg.keyword.value: arg.value for arg in node.args if arg.keyword is not None}
        if qualname in api.GRAD_MODE_CLASSES:
            found = grad_mode_of(node, self.imports)
            return Value(kind=Kind.OTHER, grad_mode=found[1] if found else None)
        if qualname in _GRAD_MODE_TESTS:
            # As the grad mode here: a forward that checks it (`if not
            # torch.is_grad_enabled(): return ...`) takes only the branch it can run in.
            on = _GRAD_MODE_TESTS[qualname]
            truth = YES if state.mode <= on else NO if not state.mode & on else UNKNOWN
            return Value(kind=Kind.OTHER, truth=truth)
        if qualname == "torch.is_floating_point" and args and args[0].is_tensor:
            return Value(kind=Kind.OTHER, truth=args[0].integer.negate())
        if name == "TensorDataset" and module.startswith("torch.utils.data"):
            # Each element, and each batch a DataLoader makes, is a tuple of new tensors.
            parts = [
                Value(
                    kind=Kind.TENSOR,
                    requires_grad=NO if v.requires_grad is NO else UNKNOWN,
                    leaf=YES if v.requires_grad is NO else UNKNOWN,
                    inference=v.inference,
                    integer=v.integer,
                )
                if v.is_tensor
                else UNKNOWN_VALUE
                for v in args
            ]
            return Value(kind=Kind.SEQUENCE, item=sequence(parts, fixed=True))
        if name == "DataLoader" and module.startswith("torch.utils.data"):
            dataset = args[0] if args else UNKNOWN_VALUE
            if dataset.kind is Kind.SEQUENCE and dataset.item is not None:
                return Value(kind=Kind.SEQUENCE, item=dataset.item)
            getitem = self.method_of(dataset, "__getitem__")
            if getitem is not None and dataset.kind is Kind.OTHER:
                # A Dataset of this module: each batch is its items stacked, which keeps
                # the graph of any tensor they were cut from.
                item = self.run_function(getitem, [INT], {}, state, dataset, node)
                return Value(kind=Kind.SEQUENCE, item=self.collated(item, node, state))
            return UNKNOWN_VALUE
        if name in ("clip_grad_norm_", "clip_grad_value_") and module.startswith("torch.nn.utils"):
            if args:
                self.clip_grads(args[0], node, state)
            return Value(kind=Kind.TENSOR, requires_grad=NO)
        if name == "GradScaler" and module in ("torch.cuda.amp", "torch.amp", "torch"):
            return Value(kind=Kind.OTHER, layer="grad_scaler")
        if qualname == "matplotlib.pyplot.subplots":
            return sequence([FIGURE, AXES], fixed=True)
        if qualname in api.FIGURE_MAKERS:
            return FIGURE
        if qualname in api.AXES_MAKERS:
            return AXES
        if qualname in api.NAMESPACES:
            return Value(kind=Kind.OTHER, fields=self.keyword_fields(node, args))
        if qualname == "collections.namedtuple" and len(node.args) >= 2:
            names = _field_names(node.args[1].value)
            if names is not None:
                # The class: calling it makes a record with these fields.
                return Value(
                    kind=Kind.OTHER, layer="record", fields=tuple((n, OTHER) for n in names)
                )
        if module.startswith("torch.distributions") and name[:1].isupper():
            # A distribution over tensors: log_prob, entropy, rsample carry their graph.
            return self.op_result(_tensor_args(args), node, state, "distribution").with_(
                layer="distribution"
            )
        if qualname in api.PARAMETER_CLASSES or qualname in api.VARIABLE_CLASSES:
            default = YES if qualname in api.PARAMETER_CLASSES else NO
            flag = kwargs.get("requires_grad")
            if flag is None and len(node.args) > 1 and node.args[1].keyword is None:
                flag = node.args[1].value
            wanted = default if flag is None else self.flag_of(flag)
            base = args[0] if args else UNKNOWN_VALUE
            return Value(
                kind=Kind.TENSOR,
                requires_grad=wanted,
                leaf=YES,
                inference=NO,
                integer=base.integer,
                node=self.new_node(node),
                grad_leaf=node if wanted is YES else None,
                parameter=qualname in api.PARAMETER_CLASSES,
                dtype=base.dtype,
            )
        if module == "torch" and (name in api.FACTORIES or name in api.LEGACY_CONSTRUCTORS):
            return self.factory(name, node, args, kwargs, state)
        if qualname == "itertools.chain":
            roots: frozenset[str] = frozenset()
            for value in args:
                roots |= value.roots
            items = []
            for value, arg in zip(args, node.args, strict=False):
                if arg.star == "*":
                    # `chain(*model.parameters())` chains each parameter's rows, which are
                    # views made by indexing: not leaves.
                    value = self.iterate(value, state, arg.value)
                items.append(self.iterate(value, state, arg.value))
            return sequence(items).with_(roots=roots)
        if module.startswith("torch.nn.utils") and name in api.MODULE_WRAPPERS and args:
            return args[0]  # weight_norm(layer) hands back the layer
        if module.startswith("torch.optim") and name[:1].isupper() and "lr_scheduler" not in module:
            return self.make_optimizer(node, args, state)
        if module in ("torch.nn", "torch.nn.modules") and name[:1].isupper():
            return self.make_module(name, node, args, kwargs)
        if qualname.startswith(api.MODEL_ZOOS) and name[:1].islower():
            return Value(kind=Kind.MODULE, has_params=YES, frozen=NO)
        if qualname in ("torch.autograd.grad", "torch.autograd.backward"):
            if args:
                self.backward(args[0], node.args[0].value, node, state, kwargs)
            item = UNKNOWN_VALUE
            graph = kwargs.get("create_graph")
            if name == "grad" and (graph is None or _bool_literal(graph) is NO):
                # Gradients as constants: tensors without a graph.
                item = Value(kind=Kind.TENSOR, requires_grad=NO, leaf=YES, grad_of=node)
            return Value(kind=Kind.SEQUENCE, item=item)
        if module.startswith("numpy") or module == "numpy":
            # Integer arrays (`np.random.randint`) make integer tensors with from_numpy.
            integer = YES if name in ("randint", "integers") else UNKNOWN
            if name in ("rand", "randn", "random", "uniform", "normal", "linspace"):
                integer = NO
            cut = next((a.cut for a in args if a.cut is not None), None)
            return Value(kind=Kind.ARRAY, requires_grad=NO, integer=integer, cut=cut)
        if module.startswith("torch") and (
            module == "torch"
            or module.startswith("torch.nn.functional")
            or module == "torch.linalg"
            or module == "torch.special"
            or module == "torch.fft"
        ):
            if name in api.NO_GRAD_RESULTS:
                first = next(iter(_tensor_args(args)), UNKNOWN_VALUE)
                return self.no_grad_tensor(first, node)
            tensors = _tensor_args(args)
            if not tensors:
                return UNKNOWN_VALUE
            grad_args = [
                value
                for value, arg in zip(args, node.args, strict=False)
                if arg.keyword is None or arg.keyword.value not in api.NON_TENSOR_KEYWORDS
            ]
            if name in api.CLASS_INDEX_LOSSES:
                grad_args = _without_unknown_target(grad_args)
            inplace = kwargs.get("inplace")
            if inplace is not None and _bool_literal(inplace) is YES and args:
                self.facts.inplace.append(Inplace(node, node.args[0].value))
                return self.inplace_result(
                    args[0], args[1:], name, node, state, saves_output=name in api.SAVES_OUTPUT
                )
            result = self.op_result(grad_args, node, state, name)
            if api.is_criterion(name):
                return self.criterion_result(result, _tensor_args(grad_args))
            return self.with_indices(result, node, name, 1)
        if not module.startswith("torch"):
            self.forget_modules(args, state)
        return UNKNOWN_VALUE

    def keyword_fields(self, node: cst.Call, args: list[Value]) -> tuple[tuple[str, Value], ...]:
        return tuple(
            (arg.keyword.value, value)
            for arg, value in zip(node.args, args, strict=False)
            if arg.keyword is not None
        )

    def factory(
        self,
        name: str,
        node: cst.Call,
        args: list[Value],
        kwargs: dict[str, cst.BaseExpression],
        state: State,
    ) -> Value:
        flag = kwargs.get("requires_grad")
        wanted = NO if flag is None else self.flag_of(flag)
        integer = self.factory_integer(name, node, args, kwargs)
        inference = _inference_in(state.mode)
        data = args[0] if args and name in api.FROM_DATA else UNKNOWN_VALUE
        if data.kind is Kind.SEQUENCE and data.item is not None:
            data = data.item
        made = Value(
            kind=Kind.TENSOR,
            requires_grad=wanted,
            leaf=YES,
            inference=inference,
            integer=integer,
            node=self.new_node(node),
            born=node if wanted is NO else None,
            made_in=state.grad_off_at if inference is YES else None,
            grad_leaf=node if wanted is YES else None,
            dtype=self.factory_dtype(name, kwargs),
        )
        if data.cut is not None and data.requires_grad is not YES:
            # Made from values cut from a graph (`loss.item()`, a numpy round trip).
            made = made.with_(cut=data.cut)
            return self.revive(made, node) if wanted is YES else made
        return made

    def factory_dtype(self, name: str, kwargs: dict[str, cst.BaseExpression]) -> str | None:
        """The dtype a factory makes, where known; not known on a device chosen by name."""
        if "device" in kwargs:
            return None
        if "dtype" in kwargs:
            return self.facts.value(kwargs["dtype"]).dtype
        return "float32" if name in api.FLOAT32_FACTORIES else None

    def factory_integer(
        self, name: str, node: cst.Call, args: list[Value], kwargs: dict[str, cst.BaseExpression]
    ) -> Tri:
        dtype = kwargs.get("dtype")
        if dtype is not None:
            dtype_name = (dotted(dtype) or "").rsplit(".", 1)[-1]
            if dtype_name in api.INTEGER_DTYPES:
                return YES
            if dtype_name in api.FLOAT_DTYPES:
                return NO
            return UNKNOWN
        if name in api.INTEGER_FACTORIES:
            return YES
        if name in api.LEGACY_CONSTRUCTORS:
            return api.LEGACY_CONSTRUCTORS[name]
        if name == "arange" or name == "tensor":
            positional = [a.value for a in node.args if a.keyword is None]
            if name == "arange" and positional:
                # Integer bounds and step (`-2`, `n`, `len(x)`) make an integer tensor.
                numbers = [
                    value
                    for arg, value in zip(node.args, args, strict=False)
                    if arg.keyword is None
                ]
                if any(v.kind is Kind.NUMBER and v.integer is NO for v in numbers):
                    return NO
                if len(numbers) == len(positional) and all(
                    v.kind is Kind.NUMBER and v.integer is YES for v in numbers
                ):
                    return YES
                return UNKNOWN
            if name == "tensor" and positional:
                literal = _literal_integer(positional[0])
                return literal if literal is not UNKNOWN or not args else _number_dtype(args[0])
            return UNKNOWN
        if name in ("from_numpy", "as_tensor") and args and args[0].kind is Kind.ARRAY:
            return args[0].integer
        if name.endswith("_like") and args:
            return args[0].integer
        return (
            NO
            if name
            in (
                "zeros",
                "ones",
                "empty",
                "full",
                "rand",
                "randn",
                "linspace",
                "logspace",
                "eye",
                "normal",
            )
            and "full" != name
            else UNKNOWN
        )

    def optimizer_made(
        self, outer: cst.Call, node: cst.Call, args: list[Value], state: State
    ) -> None:
        """An optimizer subclass hands torch the parameters at `node`, inside the class;
        report on the construction at `outer`."""
        self.record_optimizer(outer, args, state)

    def make_optimizer(self, node: cst.Call, args: list[Value], state: State) -> Value:
        self.record_optimizer(node, args, state)
        return self.new_optimizer(node, args[0].roots if args else frozenset(), state)

    def record_optimizer(self, node: cst.Call, args: list[Value], state: State) -> None:
        """An optimizer built at `node` over `args[0]`: a generator it uses up, a module
        with no parameters (and the plain list that hid them)."""
        params = node.args[0].value if node.args and node.args[0].keyword is None else None
        given = args[0] if args else UNKNOWN_VALUE
        for part in (given, given.item):
            if part is not None and isinstance(part.revived, cst.CSTNode):
                self.facts.revived_as_leaves.add(part.revived)  # a leaf to optimize
        exhausted = False
        used_up_at = None
        if given.kind is Kind.PARAMS and given.origin is not None:
            exhausted = given.origin in state.exhausted
            if exhausted:
                used_up_at = self._used_up_at.get(given.origin)
            else:
                self._used_up_at[given.origin] = node
            state.exhausted = state.exhausted | {given.origin}
        empty = given.kind is Kind.PARAMS and given.items == ()
        cause = misspelt = None
        if empty:
            module = state.env.get(given.path) if given.path is not None else None
            cls = module.cls if module is not None else given.layer
            if cls is not None:
                cause = self.unregistered.get(cls)
                misspelt = self.misspelt_init(cls)
        parts, clock, covers = self.optimizer_built(node, given, state)
        self.facts.optimizers.append(
            OptimizerMade(
                node,
                params,
                exhausted,
                empty,
                cause,
                misspelt,
                used_up_at,
                generator_made=(
                    self._generators_made.get(given.origin)
                    if exhausted and given.origin is not None
                    else None
                ),
                frozen_parts=parts,
                trainable_only=given.trainable_only,
                params_made=(
                    self._bound_by.get((id(self._function), params.value))
                    if type(params) is cst.Name
                    else None
                ),
                clock=clock,
                covers=covers,
                tensors_only=bool(given.items)
                and all(
                    item.kind is Kind.TENSOR and item.path is None for item in given.items or ()
                ),
            )
        )

    def misspelt_init(self, cls_name: str) -> cst.CSTNode | None:
        """A class without `__init__` whose method was meant to be it (`_init_`)."""
        cls = self.scopes.classes.get(cls_name)
        if cls is None or self.find_method(cls, "__init__") is not None:
            return None
        for name, method in cls.methods.items():
            if name != "__init__" and name.strip("_") in _INIT_MISSPELLINGS:
                return method.node
        return None

    def make_module(
        self, name: str, node: cst.Call, args: list[Value], kwargs: dict[str, cst.BaseExpression]
    ) -> Value:
        if name in ("Sequential", "ModuleList", "ModuleDict"):
            return self.container(name, node, args)
        if name == "Parameter":
            return UNKNOWN_VALUE
        if name in ("ParameterList", "ParameterDict"):
            param = Value(kind=Kind.TENSOR, requires_grad=YES, leaf=YES, inference=NO, integer=NO)
            has = NO if args and args[0].kind is Kind.SEQUENCE and args[0].items == () else YES
            return Value(kind=Kind.MODULE, has_params=has, frozen=NO, layer=name, item=param)
        has = NO if name in api.PARAMETERLESS_MODULES else YES
        if has is NO and _grad_of(args) is not NO:
            has = UNKNOWN  # a loss weighted by a tensor that may itself be trained
        flag = kwargs.get("inplace")
        inplace = (
            name in api.INPLACE_CAPABLE_MODULES and flag is not None and _bool_literal(flag) is YES
        )
        return Value(
            kind=Kind.MODULE, has_params=has, frozen=NO, layer=name, inplace=inplace, born=node
        )

    def container(self, name: str, node: cst.Call, args: list[Value]) -> Value:
        """nn.Sequential / ModuleList / ModuleDict: its layers, in order where known."""
        owner = self._function.owner if self._function is not None else None
        for arg in node.args:
            key = dotted(arg.value)
            if owner is not None and key is not None and key.startswith("self."):
                # `nn.ModuleList(self.layers)`: the plain list's layers are registered here.
                self._registered_attrs.add((owner.name, key[5:]))
        has_params: Tri = NO
        parts: list[Value] = []
        ordered = name == "Sequential"
        for arg, value in zip(node.args, args, strict=False):
            if arg.star == "*" and value.items is not None:
                parts.extend(value.items)
                continue
            if value.kind is Kind.SEQUENCE:
                ordered = ordered and value.items is not None
                parts.extend(value.items or ([value.item] if value.item else []))
            else:
                parts.append(value)
        for part in parts:
            has_params = has_params | (part.has_params if part.kind is Kind.MODULE else UNKNOWN)
        if not args and name == "ModuleList":
            has_params = UNKNOWN  # filled later with append()
        element = sequence(parts).item if parts and name != "ModuleDict" else None
        layers = tuple(parts) if ordered and all(p.kind is Kind.MODULE for p in parts) else None
        return Value(
            kind=Kind.MODULE,
            has_params=has_params,
            frozen=NO,
            layer=name,
            item=element,
            items=layers,
        )

    def method_call(
        self, receiver: Value, method: str, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        kwargs = {arg.keyword.value: arg.value for arg in node.args if arg.keyword is not None}
        if method == "retain_grad":
            self.retain_grad(receiver)
            return NONE
        if method == "backward":
            for arg in args:
                # `accelerator.backward(loss)` back-propagates its argument, in code the
                # analysis does not follow (it may scale, accumulate or skip it).
                self.propagate(arg)
            self.backward(receiver, node.func.value, node, state, kwargs)  # type: ignore[attr-defined]
            return OTHER
        if method == "requires_grad_" and receiver.kind is Kind.UNKNOWN:
            # A module or parameter we cannot name may be frozen or made trainable here.
            flag = args[0] if args else Value(kind=Kind.OTHER, truth=YES)
            self.note_freeze(None, flag.truth, node, state)
        if method == "step" and receiver.kind is Kind.OPTIMIZER:
            if args and args[0].layer == "function":  # LBFGS-style closure: step calls it
                self.invoke(args[0], [], {}, node, state)
            self.step(receiver, node, state)
            return OTHER
        if method == "zero_grad" and receiver.kind is Kind.OPTIMIZER:
            self.clear_grads(receiver, node, state)
            return NONE
        if method == "add_param_group" and receiver.kind is Kind.OPTIMIZER:
            self.params_added(receiver)
            return NONE
        if receiver.kind is Kind.MODULE:
            return self.module_method(receiver, method, node, args, state)
        if receiver.kind is Kind.UNKNOWN and method in _ATTACHING and args:
            # `block.add_module("lora", ...)`, `net.blocks.append(Block())` on a part of a
            # model whose kind is not known: it may register a layer there.
            statement = self._statement if self._statement is not None else node
            layer = args[-1]
            if method == "extend":
                layer = layer.item if layer.kind is Kind.SEQUENCE and layer.item else UNKNOWN_VALUE
            name = args[0].text if method in ("add_module", "register_module") else None
            holder = node.func.value  # type: ignore[attr-defined]
            self.attach(receiver, holder, name, layer, statement, state)
        if receiver.kind in (Kind.UNKNOWN, Kind.OTHER):
            optimizers = [v for v in args if v.kind is Kind.OPTIMIZER]
            if method == "step" and receiver.layer == "grad_scaler" and optimizers:
                self.step(optimizers[0], node, state)  # unscales, then optimizer.step()
            else:
                self.forget_grads(state, optimizers)  # code we cannot see has them
        if receiver.kind is Kind.PARAMS and method in ("__iter__",):
            return receiver
        if receiver.layer == "figure" and method in api.AXES_FROM_FIGURE:
            return AXES
        if receiver.layer == "axes":
            return AXES if method in api.AXES_FROM_AXES else OTHER
        if receiver.kind is Kind.MAPPING:
            item = receiver.item or UNKNOWN_VALUE
            if method == "values":
                return Value(kind=Kind.SEQUENCE, item=item)
            if method == "items":
                return Value(kind=Kind.SEQUENCE, item=_pair(item))
            if method in ("get", "pop", "setdefault"):
                return item
            if method == "keys":
                return Value(kind=Kind.SEQUENCE, item=OTHER)
            return UNKNOWN_VALUE
        if receiver.kind is Kind.SEQUENCE:
            key = dotted(node.func.value)  # type: ignore[attr-defined]
            holder = self.field_holder(node.func.value, state)  # type: ignore[attr-defined]
            shared = key is not None and self.is_global(key, state) and "." in key
            if (
                holder is not None
                or shared
                or (key is not None and (key in state.env or key.startswith("self.")))
            ):
                env = self.module_env if shared else state.env
                old = env.get(key, receiver) if key is not None else receiver
                kept: Value | None = old.item
                filled_by = old.filled_by
                # What the list gets: `append(x)` and `insert(i, x)` one element, `extend(xs)`
                # each of another sequence's.
                added: Value | None = None
                at = None if holder is not None or shared else key
                if method == "append" and len(args) == 1:
                    added = self.keep_in_container(args[0], node, old, at, state)
                elif method == "insert" and len(args) == 2:
                    added = self.keep_in_container(args[1], node, old, at, state)
                elif method == "extend" and len(args) == 1 and args[0].kind is Kind.SEQUENCE:
                    added = args[0].item
                    if added is None:
                        added = kept  # an empty sequence adds nothing
                elif method == "clear":
                    kept = None  # emptied in place
                elif method in ("append", "extend", "insert", "__setitem__"):
                    added = UNKNOWN_VALUE
                if added is not None and key is not None:
                    self.note_layers_added(key, added, node)
                if added is not None:
                    kept = added if kept is None else kept.join(added)
                    if added.is_tensor and added.requires_grad is YES:
                        # A running total of losses kept as a tensor: the fix is there.
                        filled_by = added.summed_at or node
                updated = old.with_(item=kept, items=None, filled_by=filled_by)
                if holder is not None:
                    name, field_name = holder
                    self.set_field(name, field_name, updated, state)
                if key is not None:
                    env[key] = updated
                    self.update_class_attr(key, updated)
            return OTHER if method in ("append", "extend", "insert") else UNKNOWN_VALUE
        if receiver.kind is Kind.ARRAY and receiver.cut is not None:
            return Value(kind=Kind.ARRAY, requires_grad=NO, cut=receiver.cut)  # `arr.sum()`
        if receiver.kind is not Kind.TENSOR:
            return UNKNOWN_VALUE
        if method == "is_floating_point":
            return Value(kind=Kind.OTHER, truth=receiver.integer.negate())
        if receiver.layer == "distribution":
            if method in ("sample", "sample_n", "enumerate_support"):
                return self.no_grad_tensor(receiver, node)
            result = self.op_result([receiver, *args], node, state, method)
            return result.with_(log_prob_of=node) if method == "log_prob" else result
        if method == "detach":
            made_by = node.func.value  # type: ignore[attr-defined]
            if (
                type(made_by) is cst.Call
                and id(made_by) in self._module_calls
                and receiver.requires_grad is YES
                and state.mode == ENABLED
            ):
                # A whole forward recorded, only for its graph to be dropped at once.
                self.facts.detached_forwards[node] = None
            # detach() shares storage and version counter with the tensor.
            detached = self.no_grad_tensor(receiver, node).with_(
                leaf=YES, integer=receiver.integer, node=receiver.node
            )
            if receiver.bootstrap is not None and state.mode == ENABLED:
                wasted = self.forwards_only_into(receiver)
                if wasted:
                    detached = detached.with_(wasted=wasted)
            return detached
        if method == "detach_":
            key = dotted(node.func.value)  # type: ignore[attr-defined]
            detached = self.no_grad_tensor(receiver, node).with_(leaf=YES, node=receiver.node)
            if key is not None:
                state.env[key] = detached
            return detached
        if method == "requires_grad_":
            flag = args[0] if args else Value(kind=Kind.OTHER, truth=YES)
            wanted = flag.truth
            if receiver.leaf is not YES:
                return receiver
            self.set_requires_grad(receiver, node.func.value, flag, state)  # type: ignore[attr-defined]
            if wanted is YES and receiver.requires_grad is NO and receiver.cut is not None:
                return self.revive(receiver.with_(grad_leaf=node), node)
            return receiver.with_(requires_grad=wanted, grad_leaf=node if wanted is YES else None)
        if method in api.CONVERSIONS:
            self.forget_converted(node)
        if method in api.NON_TENSOR_METHODS:
            taken = (
                Value(kind=Kind.ARRAY, requires_grad=NO)
                if method == "numpy"
                else NUMBER
                if method == "item"
                else INT
                if method in api.COUNT_METHODS or (method in ("size", "stride") and args)
                else Value(kind=Kind.OTHER, requires_grad=NO)
            )
            if method in api.CONVERSIONS:  # values out of torch: where their graph was cut
                taken = taken.with_(cut=self.no_grad_tensor(receiver, node).cut)
            return taken
        if method in ("all", "any", "item") and receiver.truth is not UNKNOWN:
            # `torch.isfinite(loss).all()`
            return receiver if method != "item" else NUMBER.with_(truth=receiver.truth)
        finite = api.FINITE_CHECKS.get(f"torch.{method}")
        if finite is not None:
            return self.no_grad_tensor(receiver, node).with_(truth=YES if finite else NO)
        if method in api.NO_GRAD_RESULTS:
            cut = self.no_grad_tensor(receiver, node)
            return cut.with_(integer=YES) if method in api.INTEGER_CASTS else cut
        if method.endswith("_") and not method.startswith("_") and method not in api.NOT_INPLACE:
            self.facts.inplace.append(Inplace(node, node.func.value))  # type: ignore[attr-defined]
            base = method[:-1]
            return self.inplace_result(
                receiver, args, base, node, state, saves_output=base in api.SAVES_OUTPUT
            )
        if method in (
            "contiguous",
            "float",
            "to",
            "cpu",
            "type",
            "cuda",
            "double",
            "half",
            "bfloat16",
            "clone",
        ):
            integer = NO if method in ("float", "double", "half", "bfloat16") else receiver.integer
            target = _CAST_DTYPES.get(method) or next((a.dtype for a in args if a.dtype), None)
            copies = _copies(receiver, method, target)
            if copies is NO and receiver.requires_grad is YES:
                return receiver  # already that dtype: the tensor itself
            result = self.op_result([receiver], node, state, method).with_(
                integer=integer, dtype=target if target is not None else receiver.dtype
            )
            if copies is UNKNOWN and result.requires_grad is YES:
                # May return the tensor itself (same device and dtype): a leaf stays a leaf.
                if receiver.leaf is YES:
                    # Not surely a copy: whatever op next copies it is the one to blame.
                    return result.with_(leaf=UNKNOWN, moved=None, grad_leaf=receiver.grad_leaf)
                return result.with_(leaf=NO)
            return result
        operands = [receiver, *args] if method in api.BINARY_METHODS else [receiver]
        return self.with_indices(self.op_result(operands, node, state, method), node, method, 0)

    def with_indices(self, values: Value, node: cst.Call, op: str, tensors: int) -> Value:
        """Ops that return `(values, indices)` (`topk`, `sort`, `max(x, dim)`): the indices
        are an integer tensor without a graph. `tensors`: how many leading arguments are the
        tensors themselves (1 for `torch.max(x, 1)`, 0 for `x.max(1)`)."""
        positional = [arg for arg in node.args if arg.keyword is None]
        by_dim = len(positional) > tensors or any(
            arg.keyword is not None and arg.keyword.value == "dim" for arg in node.args
        )
        if op not in api.VALUES_AND_INDICES and not (op in api.REDUCTIONS_BY_DIM and by_dim):
            return values
        if op in api.REDUCTIONS_BY_DIM and len(positional) > tensors:
            if self.facts.value(positional[tensors].value).is_tensor:
                return values  # `torch.max(a, b)`, `a.max(b)`: elementwise
        indices = self.no_grad_tensor(values, node).with_(integer=YES)
        parts = (values, indices)
        return sequence(list(parts), fixed=True).with_(
            fields=(("values", values), ("indices", indices))
        )

    def forwards_only_into(self, target: Value) -> frozenset[cst.Call]:
        """The model calls whose outputs went into this bootstrapped target and nowhere
        else: detached, it makes their recorded graphs useless."""
        found = set()
        for node in target.graph:
            call = self._model_outputs.get(node)
            if call is not None and self._consumers.get(node, set()) <= target.graph:
                found.add(call)
        return frozenset(found)

    def forget_converted(self, node: cst.Call) -> None:
        """`model(x).detach().cpu().numpy()`: the way to take values out for plots and logs,
        which GL101 asks for; not a forward meant as a constant."""
        inner = node.func.value  # type: ignore[attr-defined]
        while type(inner) is cst.Call and type(inner.func) is cst.Attribute:
            if inner.func.attr.value == "detach":
                self.facts.detached_forwards.pop(inner, None)
                return
            if inner.func.attr.value not in ("cpu", "to", "float", "double"):
                return
            inner = inner.func.value

    def retain_grad(self, tensor: Value) -> None:
        """`x.retain_grad()`: backward fills `x.grad` though `x` is not a leaf."""
        sites = {n[0] for n in (tensor.node, tensor.head) if n is not None}
        self.facts.retained |= sites
        if not sites:
            self.facts.retained_unknown = True

    def add_layers(
        self, module: Value, method: str, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        """`layers.append(Block())` on an nn.ModuleList: it may now hold that layer (order
        is not kept)."""
        added = args[0] if args else UNKNOWN_VALUE
        if method == "extend":
            added = added.item if added.kind is Kind.SEQUENCE and added.item else UNKNOWN_VALUE
        item = added if module.item is None else module.item.join(added)
        has = added.has_params if added.kind is Kind.MODULE else UNKNOWN
        if module.item is not None or module.has_params is YES:
            has = has | module.has_params
        grown = module.with_(item=item, items=None, has_params=has)
        # A layer added to a container of a frozen model may train.
        statement = self._statement if self._statement is not None else node
        self.attach(module, node.func.value, None, added, statement, state)  # type: ignore[attr-defined]
        key = dotted(node.func.value)  # type: ignore[attr-defined]
        if key is not None:
            state.env[key] = grown
            self.update_class_attr(key, grown)
        return NONE

    def module_method(
        self, module: Value, method: str, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        state.exhausted = state.exhausted - {id(node)}  # a fresh generator on each call
        if module.layer in ("ModuleList", "Sequential") and method in ("append", "extend"):
            return self.add_layers(module, method, node, args, state)
        if module.layer in ("ModuleList", "Sequential") and method == "insert" and len(args) == 2:
            return self.add_layers(module, "append", node, args[1:], state)
        if method in ("add_module", "register_module") and len(args) == 2:
            # `model.add_module("head", nn.Linear(...))`: a child, as `model.head = ...`.
            statement = self._statement if self._statement is not None else node
            holder = node.func.value  # type: ignore[attr-defined]
            self.attach(module, holder, args[0].text, args[1], statement, state)
            return NONE
        if method in ("parameters", "named_parameters"):
            # Every parameter of the module; `.*` in the path marks "all of them".
            param = _parameter(module.frozen, (module.path + ".*") if module.path else None)
            self._generators_made[id(node)] = node
            return Value(
                kind=Kind.PARAMS,
                item=param if method == "parameters" else _pair(param),
                items=() if module.has_params is NO else None,  # a module with none yet
                origin=id(node),
                path=module.path,
                layer=module.cls,  # the local class whose parameters these are
                frozen=module.frozen,
                roots=frozenset({module.path}) if module.path else frozenset(),
            )
        if method == "requires_grad_":
            flag = args[0] if args else Value(kind=Kind.OTHER, truth=YES)
            wanted = flag.truth
            self.note_freeze(module.path, wanted, node, state)
            if module.path is not None:
                for key in [k for k in state.frozen if k.startswith(module.path + ".")]:
                    del state.frozen[key]
                state.frozen[module.path] = wanted.negate()
                if wanted is NO:
                    state.frozen_at[module.path] = node
                    self._freeze_sites.add(id(node))
                self.unfreeze_parents(module.path, wanted, state)
            return module.with_(frozen=wanted.negate())
        if method == "zero_grad":
            self.clear_grads(module, node, state)
            return NONE
        if method in ("train", "eval"):
            self.set_training(module, _training_flag(method, args), node, state)
            return module
        if method == "apply" and module.path is not None:
            forget_mode(module.path, state.training)  # `apply(set_bn_eval)`: part of it
        if method in ("to", "cuda", "cpu", "float", "double", "half", "apply"):
            return module
        if method == "register_buffer" and len(args) >= 2 and module.path is not None:
            name = _string_key(node.args[0].value)
            if name is not None:  # a tensor kept on the module, not a parameter
                key = f"{module.path}.{name}"
                state.env[key] = args[1].with_(layer="buffer")
                self.update_class_attr(key, state.env[key])
            return NONE
        if method == "forward":
            return self.module_call(module, node, args, state)
        if method not in MODULE_METHODS:
            # `dit.add_adapter(config)`: a method we do not know may add or unfreeze
            # parameters.
            self.forget_modules([module], state)
        return UNKNOWN_VALUE

    def forget_modules(self, values: list[Value], state: State) -> None:
        """Code we cannot see was handed these modules and optimizers: what was frozen, and
        what their gradients hold, is unknown now, and the modules may have been run or
        trained there."""
        self.forget_grads(state, values)
        if any(value.kind is Kind.MODULE for value in values):
            self.trained()
        for value in values:
            if value.kind is Kind.MODULE and value.path is not None:
                forget_mode(value.path, state.training)  # it may have been set either way
            if value.kind is Kind.MODULE and value.path is not None and state.frozen:
                prefix = value.path + "."
                for key in [k for k in state.frozen if k == value.path or k.startswith(prefix)]:
                    state.frozen[key] = UNKNOWN

    def module_call(
        self,
        module: Value,
        node: cst.Call,
        args: list[Value],
        state: State,
        first: bool = True,
    ) -> Value:
        """`module(*args)` at `node`. Inside a Sequential only the `first` layer takes the
        call's own argument."""
        # A model called by the code that uses it, not a layer run inside a forward.
        outer = self._layer is None and not self.in_forward() and module.path is not None
        mode = mode_of(module.path, state.training) if outer and module.path else None
        result = self.run_module(module, node, args, state, first)
        if outer and module.path is not None:
            for part in _outputs(result):
                if part.head is not None:
                    # Two models of one class share their forward's nodes: then it is
                    # not known which one made a value.
                    known = self._model_calls.setdefault(part.head[0], module.path)
                    if known != module.path:
                        self._model_calls[part.head[0]] = None
                    # The same node from two calls (one forward run twice): which call
                    # made a value is not known.
                    made = self._model_outputs.setdefault(part.head, node)
                    if made is not node:
                        self._model_outputs[part.head] = None
        if outer and state.mode == ENABLED and module.path is not None:
            training = mode.training if mode is not None else UNKNOWN
            old = self.facts.forward_modes.get(node)
            self.facts.forward_modes[node] = training if old is None else old.join(training)
            if mode is not None and training is NO:
                result = self.eval_forward(module.path, mode, node, result)
            if mode is not None and module.has_params is YES and module.frozen is NO:
                result = self.resumed_in_eval(module.path, mode, node, result)
        elif outer and "E" not in state.mode and module.path is not None:
            note_evaluated(module.path, state.training)
        return result

    def resumed_in_eval(self, path: str, mode: TrainMode, node: cst.Call, result: Value) -> Value:
        """A trainable model run, while autograd records, in an eval mode that an
        evaluation left (on some path): marked, so that a backward through it is seen."""
        running = self.running_passes()
        for left in mode.left:
            if not left.resumed(running) or not _holds_graph_tensor(result):
                continue
            report = self.training_entry(left.at)
            site = self.site_key("left", id(node), id(left.at))
            self._eval_left[site] = (report, left.at, node, left.path or path)
            result = _marked(result, self.new_node(node, site))
        return result

    def eval_forward(self, path: str, mode: TrainMode, node: cst.Call, result: Value) -> Value:
        """A model run in eval mode while autograd records: what it returns carries a mark,
        so that a backward through it (or code that may run one) is seen."""
        if not _holds_graph_tensor(result):
            return result
        at = self.call_from(mode.at, node)
        site = self.site_key("eval", id(node), id(at))
        mark = self.new_node(node, site)
        found = self.facts.eval_forwards.get(at)
        if found is not None:
            sites, calls = found.sites | {site}, found.calls | {node}
            set_by = found.set_by if found.set_by is mode.at else None
            self.facts.eval_forwards[at] = EvalForward(found.node, found.path, sites, calls, set_by)
        else:
            found = EvalForward(at, path, frozenset({site}), frozenset({node}), mode.at)
            self.facts.eval_forwards[at] = found
        return _marked(result, mark)

    def run_module(
        self,
        module: Value,
        node: cst.Call,
        args: list[Value],
        state: State,
        first: bool = True,
    ) -> Value:
        self._module_calls.add(id(node))
        self._used_at = self.tick_clock()
        if module.frozen is YES and self.scopes.forwards_patched:
            module = module.with_(frozen=UNKNOWN)  # (its layers' forwards may be patched)
        if module.inplace and module.layer is not None and args:
            # nn.ReLU(inplace=True)(x) changes x in place.
            if first and node.args:
                self.facts.inplace.append(Inplace(node, node.args[0].value))
            blame = module.born if isinstance(module.born, cst.CSTNode) else None
            return self.inplace_result(
                args[0],
                [],
                module.layer,
                node,
                state,
                saves_output=module.layer in api.SAVES_OUTPUT,
                blame=blame,
            )
        layers = self.layers_of(module)
        if layers is not None and len(args) == 1:
            # A Sequential runs its layers in order: follow the tensor through each.
            value = args[0]
            outer = self._layer
            for index, layer in enumerate(layers):
                if module.frozen is YES:
                    layer = layer.with_(frozen=YES, cut=self.frozen_site(module, state))
                self._layer = self.site_key("layer", outer, index)
                value = self.run_module(layer, node, [value], state, first=index == 0)
            self._layer = outer
            if module.has_params is YES and module.frozen is NO:
                self.save_weights(module, value, state, node)
            return value
        forward = self.method_of(module, "forward")
        returned = UNKNOWN_VALUE
        if forward is not None:
            positional, keywords = _split_args(node, args)
            returned = self.run_function(forward, positional, keywords, state, module, node)
            # Cut by `.detach()`, `.data` or no_grad inside forward: no freeze changes that.
            cut_inside = (
                returned.is_tensor
                and returned.requires_grad is NO
                and isinstance(returned.cut, cst.CSTNode)
                and id(returned.cut) not in self._freeze_sites
            )
            if cut_inside or (
                module.frozen is not UNKNOWN
                and (
                    returned.kind in (Kind.SEQUENCE, Kind.ARRAY, Kind.OTHER)
                    or (returned.kind is Kind.TENSOR and returned.requires_grad is not UNKNOWN)
                )
            ):
                if returned.is_tensor and returned.requires_grad is NO and module.path:
                    frozen_at = self.frozen_site(module, state)
                    if module.frozen is YES and frozen_at is not None:
                        returned = returned.with_(cut=frozen_at)
                if module.has_params is YES and module.frozen is NO:
                    self.save_weights(module, returned, state, node)
                return returned
            if module.has_params is NO and returned.kind is Kind.UNKNOWN:
                # A forward that uses layers its constructor never made (a misspelt
                # `__init__`): what it returns is unknown, not the input passed through.
                module = module.with_(has_params=UNKNOWN)
        inputs = _tensor_args(args)
        trainable = module.has_params is YES and module.frozen is NO
        if trainable:
            grad, potential = YES, YES
        else:
            if module.layer in api.CLASS_INDEX_LOSSES:
                args = _without_unknown_target(args)
            grad = _grad_of(args) if args else UNKNOWN
            potential = _grad_of(args, potential=True) if args else UNKNOWN
            if module.has_params is not NO and module.frozen is not YES and grad is not YES:
                grad, potential = UNKNOWN, UNKNOWN if potential is not YES else YES
        requires, potential = self.recorded(grad, potential, state)
        value = self.tensor_result(inputs, node, state, requires, potential, saves=True)
        if module.layer is not None and api.is_criterion(module.layer):
            value = self.criterion_result(value, inputs)
            # (A loss module reduces what it is given, as `mean` does: of gradients taken
            # without a graph, a penalty.)
            value = self.with_gradient_origin(value, inputs, "mean")
        if requires is NO and module.frozen is YES:
            frozen_at = self.frozen_site(module, state)
            if frozen_at is not None and value.cut is None:
                value = value.with_(cut=frozen_at)
        if potential is YES:
            if module.layer in api.SAVES_OUTPUT and value.node is not None:
                state.saves[value.node] = frozenset({(value.node, 0)})
                state.versions[value.node] = 0
            self.save_inputs(inputs, value, state, when=trainable or module.layer in _SAVING_NORMS)
            if trainable:
                self.save_weights(module, value, state, node)
        return value

    def collated(self, item: Value, node: cst.Call, state: State) -> Value:
        """What a DataLoader makes of one dataset item: tensors stacked into a batch,
        tuples and dicts of them part by part."""
        if item.is_tensor:
            return self.op_result([item], node, state, "stack")
        if item.kind is Kind.SEQUENCE and item.items is not None:
            return sequence([self.collated(v, node, state) for v in item.items], fixed=True)
        if item.fields is not None:
            fields = tuple((k, self.collated(v, node, state)) for k, v in item.fields)
            return item.with_(fields=fields)
        return UNKNOWN_VALUE

    def iterate(self, iterable: Value, state: State, expr: cst.BaseExpression) -> Value:
        """The value of one element when iterating."""
        if iterable.kind is Kind.PARAMS:
            if iterable.origin is not None:
                if iterable.origin not in state.exhausted:
                    self._used_up_at[iterable.origin] = expr
                state.exhausted = state.exhausted | {iterable.origin}
            return iterable.item if iterable.item is not None else UNKNOWN_VALUE
        if iterable.kind is Kind.SEQUENCE:
            items = iterable.items
            if (
                items
                and iterable.item is not None
                and iterable.item.kind is Kind.OPTIMIZER
                and iterable.item.origin is None
                and all(v.kind is Kind.OPTIMIZER and v.origin is not None for v in items)
            ):
                # `for opt in (opt_g, opt_d): opt.zero_grad()`: each of them, in turn.
                return iterable.item.with_(items=items)
            return iterable.item if iterable.item is not None else UNKNOWN_VALUE
        if iterable.kind is Kind.TENSOR:
            return self.op_result([iterable], expr, state, "select")
        if iterable.kind is Kind.MODULE and iterable.item is not None:
            # The layers of a Sequential or ModuleList, each reached from the container.
            if iterable.path is None or iterable.item.kind is not Kind.MODULE:
                return iterable.item
            return self.with_frozen(iterable.item.with_(path=f"{iterable.path}.[]"), state)
        if iterable.kind is Kind.MAPPING:
            return OTHER  # its keys
        if iterable.layer == "axes":
            return AXES
        if iterable.kind is Kind.OTHER and iterable.cls is not None:
            return self.iterate_instance(iterable, state)
        return UNKNOWN_VALUE

    def iterate_instance(self, instance: Value, state: State) -> Value:
        """An element of an instance of a local class: what its `__iter__` yields, or what
        the iterator it returns gives from `__next__`; else its `__getitem__`."""
        iter_method = self.method_of(instance, "__iter__")
        if iter_method is not None:
            iterator = self.run_function(iter_method, [], {}, state, instance)
            if iterator.kind is Kind.SEQUENCE:  # a generator
                return iterator.item if iterator.item is not None else UNKNOWN_VALUE
            next_method = self.method_of(iterator, "__next__")
            if next_method is not None:
                return self.run_function(next_method, [], {}, state, iterator)
            return UNKNOWN_VALUE
        getitem = self.method_of(instance, "__getitem__")
        if getitem is not None:
            return self.run_function(getitem, [INT], {}, state, instance)
        return UNKNOWN_VALUE


_CAST_DTYPES = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16"}


def _copies(tensor: Value, method: str, target: str | None) -> Tri:
    """Whether a move or cast makes a copy (YES) or returns the tensor itself (NO): it
    copies unless the tensor already has that dtype and device."""
    if method == "clone":
        return YES
    if target is not None and tensor.dtype is not None:
        if target != tensor.dtype:
            return YES
        return NO if method in _CAST_DTYPES else UNKNOWN
    if method in ("cuda", "double", "half", "bfloat16"):
        return YES  # made on the CPU with the default dtype, as nearly every tensor is
    return UNKNOWN


FIGURE = Value(kind=Kind.OTHER, layer="figure")
# A matplotlib Axes, or an array of them (indexing and iterating give an Axes).
AXES = Value(kind=Kind.OTHER, layer="axes")


def _training_flag(method: str, args: list[Value]) -> Tri:
    """The mode `.eval()` / `.train(mode=True)` sets: YES training, NO eval."""
    if method == "eval":
        return NO
    return args[0].truth if args else YES


def _outputs(result: Value) -> list[Value]:
    """The tensors a model returns: itself, or those in the tuple or dict it returns (one
    level down: `logits, (mean, std)`, `{"mean": m}`)."""
    found: list[Value] = []
    todo = [(result, 0)]
    while todo:
        value, depth = todo.pop()
        if value.is_tensor:
            found.append(value)
        elif depth < 2:
            parts = [*(value.items or ()), *(v for _, v in value.fields or ())]
            todo.extend((part, depth + 1) for part in parts)
    return found
