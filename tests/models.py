"""Models only the tests need, built with onnx.helper like examples/build_models.py."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def colsum() -> onnx.ModelProto:
    """y = x summed over its first axis, declared as if rows mapped to rows: a model whose
    config wrongly asks for batching, so every batch of its jobs falls back to one by one."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)],
        "colsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 4])],
        initializer=[numpy_helper.from_array(np.array([0], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
