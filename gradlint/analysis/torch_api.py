"""What the analysis knows of PyTorch's API: small tables, by qualified name or method name."""

from __future__ import annotations

from gradlint.analysis.values import NO as NO_
from gradlint.analysis.values import YES as YES_

GRAD_MODE_CLASSES = {
    "torch.no_grad": "disabled",
    "torch.autograd.no_grad": "disabled",
    "torch.autograd.grad_mode.no_grad": "disabled",
    "torch.enable_grad": "enabled",
    "torch.autograd.enable_grad": "enabled",
    "torch.autograd.grad_mode.enable_grad": "enabled",
    "torch.inference_mode": "inference",
    "torch.autograd.inference_mode": "inference",
    "torch.autograd.grad_mode.inference_mode": "inference",
    "torch.set_grad_enabled": "set",
    "torch.autograd.set_grad_enabled": "set",
    "torch.autograd.grad_mode.set_grad_enabled": "set",
}

# Lightning runs these hooks with grad disabled.
NO_GRAD_HOOKS = frozenset({"validation_step", "test_step", "predict_step"})

# Packages whose decorators leave the grad mode as it is. A decorator imported from
# anywhere else (a project's own `smart_inference_mode`) may wrap the function in no_grad.
GRAD_NEUTRAL_PACKAGES = frozenset(
    "abc accelerate atexit click contextlib dataclasses deprecated fire functools gin "
    "hydra hypothesis jax lightning numba overrides pytest pytorch_lightning ray "
    "tensorflow torch transformers typing typing_extensions unittest wandb warnings".split()
)

FACTORIES = frozenset(
    "tensor as_tensor from_numpy zeros ones empty full rand randn randint randperm arange "
    "linspace logspace eye zeros_like ones_like empty_like full_like rand_like randn_like "
    "randint_like normal tril_indices triu_indices".split()
)
INTEGER_FACTORIES = frozenset(
    {"randint", "randperm", "randint_like", "tril_indices", "triu_indices"}
)
# torch.FloatTensor(...) and kin: whether each makes an integer tensor.
LEGACY_CONSTRUCTORS = {
    "Tensor": NO_,
    "FloatTensor": NO_,
    "DoubleTensor": NO_,
    "HalfTensor": NO_,
    "BFloat16Tensor": NO_,
    "LongTensor": YES_,
    "IntTensor": YES_,
    "ShortTensor": YES_,
    "CharTensor": YES_,
    "ByteTensor": YES_,
    "BoolTensor": YES_,
}
INTEGER_DTYPES = frozenset("long int int64 int32 int16 int8 uint8 short bool".split())
FLOAT_DTYPES = frozenset(
    "float float32 float64 double half float16 bfloat16 complex64 complex128 cfloat cdouble".split()
)

# Dtypes by the names torch gives them (`torch.double`, `torch.DoubleTensor`), as one name.
_DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
}
_LEGACY_DTYPES = {
    "FloatTensor": "float32",
    "DoubleTensor": "float64",
    "HalfTensor": "float16",
    "BFloat16Tensor": "bfloat16",
    "LongTensor": "int64",
    "IntTensor": "int32",
    "ShortTensor": "int16",
    "CharTensor": "int8",
    "ByteTensor": "uint8",
    "BoolTensor": "bool",
}
# Factories whose tensors are float32 unless told otherwise (on the default dtype).
FLOAT32_FACTORIES = frozenset("randn rand zeros ones empty linspace logspace eye".split())


def dtype_named(qualname: str) -> str | None:
    """The dtype `torch.float64` or `torch.DoubleTensor` names; `cuda.` before it for
    `torch.cuda.FloatTensor`, a type on the GPU."""
    module, _, name = qualname.rpartition(".")
    if module == "torch.cuda" and name in _LEGACY_DTYPES:
        return "cuda." + _LEGACY_DTYPES[name]
    if module != "torch":
        return None
    if name in _LEGACY_DTYPES:
        return _LEGACY_DTYPES[name]
    if name in FLOAT_DTYPES or name in INTEGER_DTYPES:
        return _DTYPE_ALIASES.get(name, name)
    return None


# torch.* functions and tensor methods whose results never require grad.
NO_GRAD_RESULTS = frozenset(
    "argmax argmin argsort nonzero isnan isinf isfinite isclose equal eq ne lt le gt ge "
    "logical_and logical_or logical_not logical_xor bucketize searchsorted count_nonzero "
    "numel is_tensor is_floating_point is_nonzero allclose detach item tolist numpy size dim "
    "long int bool byte short char data_ptr element_size nelement stride storage_offset "
    "is_contiguous get_device any all unique multinomial".split()
)
# Methods whose results are not tensors at all.
NON_TENSOR_METHODS = frozenset(
    "item tolist numpy size dim numel data_ptr element_size nelement stride storage_offset "
    "is_contiguous get_device is_floating_point equal allclose __len__ __repr__".split()
)

# Tensor methods that return an int (`size` and `stride` do when given a dimension).
COUNT_METHODS = frozenset(
    "numel dim nelement element_size data_ptr get_device storage_offset".split()
)

# Tensor methods that end in `_` but are not in-place changes of the values.
NOT_INPLACE = frozenset(
    {"requires_grad_", "share_memory_", "retain_grad_", "detach_", "pin_memory_"}
)

# Ops that save their own result for backward: changing it in place breaks backward.
SAVES_OUTPUT = frozenset(
    "exp exp2 sigmoid tanh relu softmax log_softmax sqrt rsqrt elu selu celu expm1 "
    "Sigmoid Tanh ReLU Softmax LogSoftmax ELU SELU CELU".split()
)
# Ops that save their inputs (when another input requires grad).
SAVES_INPUTS = frozenset(
    "mul div matmul mm bmm mv dot addmm baddbmm einsum pow log log2 log10 log1p sin cos tan "
    "asin acos atan sinh cosh reciprocal abs sign linear bilinear conv1d conv2d conv3d "
    "conv_transpose1d conv_transpose2d conv_transpose3d batch_norm layer_norm group_norm "
    "instance_norm prod cumprod norm dist cdist max_pool1d max_pool2d max_pool3d square "
    "Linear Bilinear Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d "
    "BatchNorm1d BatchNorm2d BatchNorm3d LayerNorm GroupNorm InstanceNorm1d InstanceNorm2d "
    "Embedding LSTM GRU RNN MultiheadAttention".split()
)
# Ops that save no tensor at all: a second backward through them alone is fine.
SAVES_NOTHING = frozenset(
    "add sub neg sum mean view reshape flatten squeeze unsqueeze permute transpose t "
    "contiguous clone expand expand_as repeat cat stack narrow select chunk split unbind "
    "float double half to cpu cuda type_as view_as reshape_as".split()
)

# Layers without parameters: their output requires grad only if the input does.
PARAMETERLESS_MODULES = frozenset(
    "ReLU ReLU6 LeakyReLU PReLU_ ELU SELU CELU GELU SiLU Mish Sigmoid Tanh Softmax LogSoftmax "
    "Softplus Softsign Hardtanh Hardswish Hardsigmoid Dropout Dropout1d Dropout2d Dropout3d "
    "AlphaDropout Identity Flatten Unflatten MaxPool1d MaxPool2d MaxPool3d AvgPool1d AvgPool2d "
    "AvgPool3d AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d "
    "AdaptiveMaxPool2d AdaptiveMaxPool3d Upsample UpsamplingNearest2d UpsamplingBilinear2d "
    "PixelShuffle PixelUnshuffle ZeroPad2d ConstantPad1d ConstantPad2d ReflectionPad2d "
    "ReplicationPad2d MSELoss L1Loss CrossEntropyLoss NLLLoss BCELoss BCEWithLogitsLoss "
    "SmoothL1Loss HuberLoss KLDivLoss CosineSimilarity PairwiseDistance MultiLabelSoftMarginLoss "
    "MarginRankingLoss TripletMarginLoss CosineEmbeddingLoss CTCLoss PoissonNLLLoss "
    "GaussianNLLLoss SoftMarginLoss MultiMarginLoss HingeEmbeddingLoss MultiLabelMarginLoss "
    "Softmax2d Softmin Threshold GLU LogSigmoid Tanhshrink Hardshrink Softshrink RReLU "
    "ChannelShuffle Fold Unfold LPPool1d LPPool2d MaxUnpool1d MaxUnpool2d ReflectionPad1d "
    "ReflectionPad3d ReplicationPad1d ReplicationPad3d ZeroPad1d ZeroPad3d ConstantPad3d "
    "CircularPad1d CircularPad2d CircularPad3d".split()
)
# Layers whose `inplace=True` changes their input in place.
INPLACE_CAPABLE_MODULES = frozenset(
    "ReLU ReLU6 LeakyReLU ELU SELU CELU SiLU Mish Hardtanh Hardswish Hardsigmoid Dropout "
    "Dropout1d Dropout2d Dropout3d AlphaDropout".split()
)

# Containers and bases that make a class an nn.Module.
MODULE_BASES = frozenset(
    {
        "torch.nn.Module",
        "torch.nn.modules.module.Module",
        "torch.nn.Sequential",
        "torch.nn.ModuleList",
        "torch.nn.ModuleDict",
        "pytorch_lightning.LightningModule",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "pytorch_lightning.core.lightning.LightningModule",
    }
)
LIGHTNING_BASES = frozenset(base for base in MODULE_BASES if "ightning" in base)

# Packages whose callables build modules with parameters (`torchvision.models.resnet18()`).
MODEL_ZOOS = ("torchvision.models.", "timm.create_model", "transformers.AutoModel")

PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
VARIABLE_CLASSES = frozenset({"torch.autograd.Variable", "torch.autograd.variable.Variable"})

# numpy functions that read a tensor's attributes without converting it to an array.
NUMPY_SAFE = frozenset("shape ndim size isscalar iterable result_type dtype".split())

# Losses whose target is class indices: an integer tensor from the data, never a graph.
CLASS_INDEX_LOSSES = frozenset(
    {
        "cross_entropy",
        "nll_loss",
        "CrossEntropyLoss",
        "NLLLoss",
        "multi_margin_loss",
        "MultiMarginLoss",
    }
)

# Keyword arguments of torch functions that never hold a tensor of the graph.
NON_TENSOR_KEYWORDS = frozenset(
    "dim keepdim dtype device out inplace p eps reduction size layout pin_memory "
    "memory_format non_blocking copy align_corners mode padding stride dilation groups "
    "training momentum negative_slope ignore_index label_smoothing weight_decay".split()
)
# Tensor methods whose other operands can carry gradient (`a.mul(b)`); for the rest
# (`x.view(3, 4)`, `x.to(device)`) only the tensor itself matters.
BINARY_METHODS = frozenset(
    "add sub mul div matmul mm bmm mv dot true_divide pow where masked_fill addmm addcmul "
    "addcdiv lerp maximum minimum atan2 hypot outer cross kron index_add scatter scatter_add "
    "masked_scatter index_put copy_ add_ sub_ mul_ div_ pow_ addcmul_ addcdiv_ lerp_".split()
)

# Ops whose result is a view: it shares the input's storage and version counter.
VIEW_OPS = frozenset(
    "select transpose t T mT permute view view_as expand expand_as squeeze unsqueeze narrow "
    "diagonal unfold movedim swapaxes swapdims as_strided real imag".split()
)

# Ops that move or regroup values without computing new ones: where a graph made before a
# loop is taken in, the fix belongs at the op that computed it, not at these.
MOVE_OPS = VIEW_OPS | frozenset(
    "index stack cat concat concatenate hstack vstack reshape flatten contiguous chunk split "
    "unbind repeat tile to float double half cpu cuda clone".split()
)

# Ops whose result has their input's dtype: moving and regrouping (but not casting), and
# sign and order changes.
SAME_DTYPE_OPS = (MOVE_OPS - {"to", "float", "double", "half"}) | {"neg", "roll", "flip"}

# torch.nn.utils functions that return the module they are given.
MODULE_WRAPPERS = frozenset({"weight_norm", "spectral_norm", "remove_weight_norm"})

# Plotting and table functions that turn their arguments into numpy arrays.
ARRAY_CONVERTERS = frozenset(
    [
        f"matplotlib.pyplot.{name}"
        for name in (
            "plot scatter imshow hist bar barh fill_between errorbar semilogx semilogy loglog "
            "step stem contour contourf pcolormesh matshow boxplot violinplot".split()
        )
    ]
    + [
        "pandas.DataFrame",
        "pandas.Series",
        "seaborn.lineplot",
        "seaborn.scatterplot",
        "seaborn.histplot",
        "seaborn.heatmap",
    ]
)

# matplotlib: what makes a figure or axes, and the axes methods that convert their data
# arguments with numpy (as `plt.plot` does).
FIGURE_MAKERS = frozenset({"matplotlib.pyplot.figure", "matplotlib.pyplot.gcf"})
AXES_MAKERS = frozenset(
    {"matplotlib.pyplot.gca", "matplotlib.pyplot.subplot", "matplotlib.pyplot.axes"}
)
AXES_FROM_FIGURE = frozenset({"add_subplot", "gca", "add_axes", "subplots"})
AXES_FROM_AXES = frozenset({"twinx", "twiny", "flatten", "ravel", "inset_axes"})
AXES_PLOTS = frozenset(
    "plot scatter imshow hist bar barh fill_between errorbar semilogx semilogy loglog step "
    "stem contour contourf pcolormesh matshow boxplot violinplot hexbin quiver".split()
)

# Namespaces whose keyword arguments become attributes.
NAMESPACES = frozenset({"types.SimpleNamespace", "argparse.Namespace"})

# Tensor methods whose result has an integer or bool dtype: casts, indices, comparisons.
INTEGER_CASTS = frozenset(
    "long int short byte char bool argmax argmin argsort nonzero count_nonzero bucketize "
    "searchsorted isnan isinf isfinite eq ne lt le gt ge logical_and logical_or logical_not "
    "logical_xor multinomial".split()
)

# Checks that data is finite. Training data is: the other branch (skip the step, raise on a
# NaN loss) is the exception, so code after such a check is taken to run as on finite data.
FINITE_CHECKS = {
    f"{module}.{name}": name == "isfinite"
    for module in ("torch", "math", "numpy")
    for name in ("isfinite", "isnan", "isinf")
}

# Ops that measure the size of a tensor: applied to a gradient, they make a gradient penalty.
MAGNITUDE_OPS = frozenset("norm vector_norm pow square abs sum mean".split())

# Methods that take a tensor's values out of torch.
CONVERSIONS = frozenset("numpy tolist item".split())

# Factories that copy the data they are given.
FROM_DATA = frozenset("tensor as_tensor from_numpy Tensor FloatTensor DoubleTensor".split())

# Ops that return a (values, indices) pair; and reductions that do so when given a dim.
VALUES_AND_INDICES = frozenset("topk sort kthvalue mode cummax cummin".split())
REDUCTIONS_BY_DIM = frozenset("max min median nanmedian".split())

# Ops through which a term stays a term of a sum (scaled, added, averaged).
SUMMING_OPS = frozenset("add sub mul div neg mean sum".split())


def is_criterion(name: str) -> bool:
    """A loss function or loss module: `F.mse_loss`, `F.cross_entropy`, `nn.BCELoss`."""
    return name.endswith(("_loss", "Loss")) or name in (
        "cross_entropy",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "kl_div",
    )


# Attributes of a tensor that describe it and hold none of its values (nor its graph).
TENSOR_INFO_ATTRIBUTES = frozenset(
    {"shape", "dtype", "device", "requires_grad", "is_leaf", "grad_fn", "ndim"}
)
