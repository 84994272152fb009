"""Build the example ONNX models with onnx.helper: nothing is downloaded, weights are seeded.

    python -m examples.build_models DIR     # writes DIR/<name>/1/model.onnx for every model

Models: add (static), mlp and conv (dynamic batch), nonzero (data-dependent output shape),
slow (a Loop whose trip count is an input, for timeouts), identity_<dtype> (every dtype); for
the benchmarks only, mlp_large and resnet50 (ResNet-50's architecture).
"""

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# Kept at 8 so the models load on ONNX Runtime releases of the past few years (CANN builds lag).
IR_VERSION = 8
F = TensorProto.FLOAT


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="aclq")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _weight(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> onnx.TensorProto:
    scale = 1.0 / np.sqrt(shape[-1] if len(shape) < 4 else np.prod(shape[1:]))
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def add() -> onnx.ModelProto:
    """c = a + b on float32[2, 3]: a static model."""
    io = [helper.make_tensor_value_info(n, F, [2, 3]) for n in ("a", "b", "c")]
    return _model(helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "add", io[:2], io[2:]))


def mlp(widths: tuple[int, ...] = (64, 128, 10), name: str = "mlp") -> onnx.ModelProto:
    """A ReLU MLP of these layer widths: x float32[N, widths[0]] -> y float32[N, widths[-1]]
    (the default: y = relu(x @ W1 + b1) @ W2 + b2, 64 -> 128 -> 10)."""
    rng = np.random.default_rng(1)
    inits, nodes, x = [], [], "x"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
        inits += [_weight(f"W{i}", (fan_in, fan_out), rng), _weight(f"b{i}", (fan_out,), rng)]
        out = "y" if i == len(widths) - 1 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [out if out == "y" else f"g{i}"]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        x = out
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", F, ["N", widths[0]])],
        [helper.make_tensor_value_info("y", F, ["N", widths[-1]])],
        initializer=inits,
    )
    return _model(graph)


def conv() -> onnx.ModelProto:
    """A small conv net: x float32[N, 3, 32, 32] -> logits float32[N, 10]."""
    rng = np.random.default_rng(2)
    inits = [
        _weight("K1", (16, 3, 3, 3), rng),
        _weight("c1", (16,), rng),
        _weight("K2", (32, 16, 3, 3), rng),
        _weight("c2", (32,), rng),
        _weight("W", (32, 10), rng),
        _weight("bw", (10,), rng),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "K1", "c1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "K2", "c2"], ["h2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "W", "bw"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", F, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", F, ["N", 10])],
        initializer=inits,
    )
    return _model(graph)


def nonzero() -> onnx.ModelProto:
    """indices = NonZero(x): x float32[H, W] (both dynamic) -> int64[2, K], K known only after."""
    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["indices"])],
        "nonzero",
        [helper.make_tensor_value_info("x", F, ["H", "W"])],
        [helper.make_tensor_value_info("indices", TensorProto.INT64, [2, "K"])],
    )
    return _model(graph)


def resnet50() -> onnx.ModelProto:
    """ResNet-50's architecture (He et al. 2016: a 7x7 stem, bottleneck stages of 3, 4, 6 and 3
    blocks, 25.5 M weights) with seeded weights and batch norm folded into the convolutions, as
    an inference graph has it: x float32[N, 3, 224, 224] -> logits float32[N, 1000]."""
    rng = np.random.default_rng(5)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def conv(x: str, name: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> str:
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32), f"{name}.w"
        ))  # fmt: skip
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}.b"))
        pad = k // 2
        nodes.append(helper.make_node(
            "Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.c"], kernel_shape=[k, k], strides=[stride, stride],
            pads=[pad] * 4,
        ))  # fmt: skip
        if not relu:
            return f"{name}.c"
        nodes.append(helper.make_node("Relu", [f"{name}.c"], [f"{name}.r"]))
        return f"{name}.r"

    h = conv("x", "stem", 3, 64, 7, 2)
    nodes.append(helper.make_node("MaxPool", [h], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
    h, cin = "pool", 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for block in range(blocks):
            name, stride = f"s{stage}b{block}", 2 if block == 0 and stage > 1 else 1
            y = conv(h, f"{name}.1", cin, width, 1)
            y = conv(y, f"{name}.2", width, width, 3, stride)
            y = conv(y, f"{name}.3", width, width * 4, 1, relu=False)
            shortcut = conv(h, f"{name}.down", cin, width * 4, 1, stride, relu=False) if block == 0 else h
            nodes.append(helper.make_node("Add", [y, shortcut], [f"{name}.sum"]))
            nodes.append(helper.make_node("Relu", [f"{name}.sum"], [f"{name}.out"]))
            h, cin = f"{name}.out", width * 4
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    inits += [_weight("fc.w", (2048, 1000), rng), numpy_helper.from_array(np.zeros(1000, np.float32), "fc.b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "resnet50",
        [helper.make_tensor_value_info("x", F, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", F, ["N", 1000])],
        initializer=inits,
    )
    return _model(graph)


def slow() -> onnx.ModelProto:
    """y = tanh(x @ W) repeated ``iterations`` times: x float32[64, 64], iterations int64[]."""
    rng = np.random.default_rng(3)
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["x_in", "W"], ["m"]),
            helper.make_node("Tanh", ["m"], ["x_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", F, [64, 64]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", F, [64, 64]),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["iterations", "", "x"], ["y"], body=body)],
        "slow",
        [
            helper.make_tensor_value_info("x", F, [64, 64]),
            helper.make_tensor_value_info("iterations", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", F, [64, 64])],
        initializer=[_weight("W", (64, 64), rng)],
    )
    return _model(graph)


#: every numeric dtype ONNX Runtime runs Identity on (no complex on its CPU provider), and bool
DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)


def identity(dtype: str) -> onnx.ModelProto:
    """y = x on [N, M] tensors of one dtype (round trips of every dtype)."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        f"identity_{dtype}",
        [helper.make_tensor_value_info("x", elem, ["N", "M"])],
        [helper.make_tensor_value_info("y", elem, ["N", "M"])],
    )
    return _model(graph)


MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "add": add,
    "mlp": mlp,
    # 6 MB of weights: one-thread ONNX Runtime does about 3x the rows/s at batch 32 as at batch 1
    "mlp_large": lambda: mlp((512, 1024, 1024, 10), "mlp_large"),
    "conv": conv,
    # ResNet-50's architecture, 100 MB of seeded weights: the offline-batch benchmark's CNN
    "resnet50": resnet50,
    "nonzero": nonzero,
    "slow": slow,
    **{f"identity_{d}": (lambda d=d: identity(d)) for d in DTYPES},
}


#: ``<name>/config.json`` of the models whose rows are independent: their jobs may batch, those
#: waiting together (no delay: at a light load a 2 ms one tripled a job's latency and bought no
#: throughput under load, docs/performance.md)
CONFIGS: dict[str, dict[str, object]] = {
    "mlp": {"max_batch_size": 64},
    "mlp_large": {"max_batch_size": 64},
    "conv": {"max_batch_size": 64},
}


#: built only when named: the benchmarks' (tests and the demo leave them out)
BENCH_ONLY = frozenset({"mlp_large", "resnet50"})


def build(root: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write ``root/<name>/1/model.onnx`` for each model (all but BENCH_ONLY by default), and
    the config.json of those in CONFIGS; return the model paths."""
    paths = {}
    for name in names or [n for n in MODELS if n not in BENCH_ONLY]:
        path = root / name / "1" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(MODELS[name](), str(path))
        if name in CONFIGS:
            (root / name / "config.json").write_text(json.dumps(CONFIGS[name], indent=2) + "\n")
        paths[name] = path
    return paths


if __name__ == "__main__":
    for name, path in build(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/model_repo")).items():
        print(f"{name}: {path}")
