"""``acl.mdl``: model load, description, datasets, exec-config handles and execution."""

import ctypes
from dataclasses import dataclass
from typing import Any

from acl_core import codes
from acl_core.acl import _handles
from acl_core.acl._convention import returns_code, returns_value, returns_value_and_code
from acl_core.backends.base import TensorSpec
from acl_core.constants import Format
from acl_core.dataset import DataBuffer, Dataset
from acl_core.dtypes import DataType
from acl_core.errors import InvalidParamError, error_for
from acl_core.exec_config import ExecConfigHandle
from acl_core.model import execute as _execute
from acl_core.model import feeds_of, model_file
from acl_core.runtime import RUNTIME, Stream

__all__ = [
    # load
    "load_from_file",
    "load_from_mem",
    "unload",
    # description
    "create_desc",
    "get_desc",
    "destroy_desc",
    "get_num_inputs",
    "get_num_outputs",
    "get_input_size_by_index",
    "get_output_size_by_index",
    "get_input_dims",
    "get_output_dims",
    "get_cur_output_dims",
    "get_input_data_type",
    "get_output_data_type",
    "get_input_format",
    "get_output_format",
    "get_input_name_by_index",
    "get_output_name_by_index",
    "get_input_index_by_name",
    "get_output_index_by_name",
    # datasets
    "create_dataset",
    "destroy_dataset",
    "add_dataset_buffer",
    "get_dataset_buffer",
    "get_dataset_num_buffers",
    # dynamic shapes
    "set_dynamic_batch_size",
    "set_input_dynamic_dims",
    # exec-config handles and execution
    "create_exec_config_handle",
    "set_exec_config_opt",
    "destroy_exec_config_handle",
    "execute",
    "execute_v2",
]


@dataclass
class ModelDesc:
    """aclmdlDesc: filled by get_desc from a loaded model."""

    model_id: int = 0
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()


# -- load --------------------------------------------------------------------------------------
@returns_value_and_code(0)
def load_from_file(model_path: str) -> int:
    return RUNTIME.load_model(model_file(model_path)).model_id


@returns_value_and_code(0)
def load_from_mem(model: int, model_size: int) -> int:
    """``model`` is a host pointer, as from ``acl.util.bytes_to_ptr``."""
    if not model or type(model_size) is not int or model_size <= 0:
        raise InvalidParamError(f"model memory ({model!r}, {model_size!r}) is not a pointer and size")
    return RUNTIME.load_model(ctypes.string_at(model, model_size)).model_id


@returns_code
def unload(model_id: int) -> None:
    RUNTIME.models.unload(model_id)


# -- description -------------------------------------------------------------------------------
def create_desc() -> int:
    return _handles.new(ModelDesc())


@returns_code
def get_desc(model_desc: int, model_id: int) -> None:
    desc = _handles.get(model_desc, ModelDesc)
    model = RUNTIME.models.get(model_id)
    desc.model_id, desc.inputs, desc.outputs = model.model_id, model.inputs, model.outputs


@returns_code
def destroy_desc(model_desc: int) -> None:
    _handles.drop(model_desc, ModelDesc)


def _spec(model_desc: int, index: int, outputs: bool) -> TensorSpec:
    specs = _handles.get(model_desc, ModelDesc).outputs if outputs else _handles.get(model_desc, ModelDesc).inputs
    if type(index) is not int or not 0 <= index < len(specs):
        kind = "outputs" if outputs else "inputs"
        raise InvalidParamError(f"index {index!r} is out of range: the model has {len(specs)} {kind}")
    return specs[index]


def _dims(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dimCount": len(spec.dims), "dims": list(spec.dims)}


def _index_by_name(model_desc: int, name: str, outputs: bool) -> int:
    desc = _handles.get(model_desc, ModelDesc)
    names = [s.name for s in (desc.outputs if outputs else desc.inputs)]
    if name not in names:
        raise InvalidParamError(f"no {'output' if outputs else 'input'} named {name!r}; names: {names}")
    return names.index(name)


@returns_value(0)
def get_num_inputs(model_desc: int) -> int:
    return len(_handles.get(model_desc, ModelDesc).inputs)


@returns_value(0)
def get_num_outputs(model_desc: int) -> int:
    return len(_handles.get(model_desc, ModelDesc).outputs)


@returns_value(0)
def get_input_size_by_index(model_desc: int, index: int) -> int:
    """Bytes of the input; 0 for a dynamic shape, whose size is known only per execution."""
    return _spec(model_desc, index, False).nbytes


@returns_value(0)
def get_output_size_by_index(model_desc: int, index: int) -> int:
    return _spec(model_desc, index, True).nbytes


@returns_value_and_code(None)
def get_input_dims(model_desc: int, index: int) -> dict[str, Any]:
    return _dims(_spec(model_desc, index, False))


@returns_value_and_code(None)
def get_output_dims(model_desc: int, index: int) -> dict[str, Any]:
    return _dims(_spec(model_desc, index, True))


@returns_value_and_code(None)
def get_cur_output_dims(model_desc: int, index: int) -> dict[str, Any]:
    """The output's shape in the model's last execution (or as described, before any)."""
    spec = _spec(model_desc, index, True)
    shapes = RUNTIME.models.get(_handles.get(model_desc, ModelDesc).model_id).last_output_shapes
    dims = list(shapes[index]) if shapes else list(spec.dims)
    return {"name": spec.name, "dimCount": len(dims), "dims": dims}


@returns_value(int(DataType.ACL_DT_UNDEFINED))
def get_input_data_type(model_desc: int, index: int) -> int:
    return int(_spec(model_desc, index, False).dtype)


@returns_value(int(DataType.ACL_DT_UNDEFINED))
def get_output_data_type(model_desc: int, index: int) -> int:
    return int(_spec(model_desc, index, True).dtype)


@returns_value(int(Format.ACL_FORMAT_UNDEFINED))
def get_input_format(model_desc: int, index: int) -> int:
    """ONNX tensors carry no layout: every one is ACL_FORMAT_ND."""
    _spec(model_desc, index, False)
    return int(Format.ACL_FORMAT_ND)


@returns_value(int(Format.ACL_FORMAT_UNDEFINED))
def get_output_format(model_desc: int, index: int) -> int:
    _spec(model_desc, index, True)
    return int(Format.ACL_FORMAT_ND)


@returns_value("")
def get_input_name_by_index(model_desc: int, index: int) -> str:
    return _spec(model_desc, index, False).name


@returns_value("")
def get_output_name_by_index(model_desc: int, index: int) -> str:
    return _spec(model_desc, index, True).name


@returns_value_and_code(-1)
def get_input_index_by_name(model_desc: int, name: str) -> int:
    return _index_by_name(model_desc, name, False)


@returns_value_and_code(-1)
def get_output_index_by_name(model_desc: int, name: str) -> int:
    return _index_by_name(model_desc, name, True)


# -- datasets ----------------------------------------------------------------------------------
def create_dataset() -> int:
    return _handles.new(Dataset())


@returns_code
def destroy_dataset(dataset: int) -> None:
    """aclmdlDestroyDataset; its data buffers are destroyed separately, as in ACL."""
    _handles.drop(dataset, Dataset)


@returns_value_and_code(0)
def add_dataset_buffer(dataset: int, data_buffer: int) -> int:
    _handles.get(dataset, Dataset).buffers.append(_handles.get(data_buffer, DataBuffer))
    return dataset


@returns_value(0)
def get_dataset_buffer(dataset: int, index: int) -> int:
    return _handles.handle_of(_handles.get(dataset, Dataset).buffer(index))


@returns_value(0)
def get_dataset_num_buffers(dataset: int) -> int:
    return len(_handles.get(dataset, Dataset).buffers)


# -- dynamic shapes ----------------------------------------------------------------------------
@returns_code
def set_dynamic_batch_size(model_id: int, dataset: int, index: int, batch_size: int) -> None:
    """aclmdlSetDynamicBatchSize: the first axis of every dynamic-batch input.

    ``index`` names an input of the model (ONNX models have no separate dynamic-batch tensor).
    """
    model = RUNTIME.models.get(model_id)
    target = _handles.get(dataset, Dataset)
    if not any(s.dims and s.dims[0] < 0 for s in model.inputs):
        raise error_for(codes.ACL_ERROR_MODEL_NOT_DYNAMIC, f"model {model_id} has no dynamic batch axis")
    if type(index) is not int or not 0 <= index < len(model.inputs):
        raise InvalidParamError(f"index {index!r} is not an input of model {model_id}")
    if type(batch_size) is not int or batch_size <= 0:
        raise InvalidParamError(f"batch size must be a positive int, got {batch_size!r}")
    target.dynamic_batch = batch_size


@returns_code
def set_input_dynamic_dims(model_id: int, dataset: int, index: int, dims: dict[str, Any]) -> None:
    """aclmdlSetInputDynamicDims: the whole shape of input ``index``; ``dims`` as pyACL's."""
    model = RUNTIME.models.get(model_id)
    target = _handles.get(dataset, Dataset)
    if not any(s.is_dynamic for s in model.inputs):
        raise error_for(codes.ACL_ERROR_MODEL_NOT_DYNAMIC, f"model {model_id} has no dynamic dims")
    if type(index) is not int or not 0 <= index < len(model.inputs):
        raise InvalidParamError(f"index {index!r} is not an input of model {model_id}")
    spec = model.inputs[index]
    shape = tuple(dims["dims"])
    if len(shape) != len(spec.dims) or any(
        type(d) is not int or d < 0 or (s >= 0 and s != d) for d, s in zip(shape, spec.dims)
    ):
        raise InvalidParamError(f"dims {list(shape)} do not fit input {spec}")
    target.dynamic_dims[index] = shape


# -- exec-config handles and execution ---------------------------------------------------------
def create_exec_config_handle() -> int:
    """aclmdlCreateExecConfigHandle."""
    return _handles.new(ExecConfigHandle())


@returns_code
def set_exec_config_opt(handle: int, attr: int, value: int) -> None:
    """aclmdlSetExecConfigOpt: refused values leave the handle as it was."""
    _handles.get(handle, ExecConfigHandle).set(attr, value)


@returns_code
def destroy_exec_config_handle(handle: int) -> None:
    _handles.drop(handle, ExecConfigHandle)


@returns_code
def execute(model_id: int, input: int, output: int) -> None:
    """aclmdlExecute."""
    model = RUNTIME.models.get(model_id)
    inputs, outputs = _handles.get(input, Dataset), _handles.get(output, Dataset)
    _execute(model, feeds_of(model, inputs, RUNTIME.memory), outputs, None, RUNTIME.memory)


@returns_code
def execute_v2(model_id: int, input: int, output: int, stream: int, handle: int) -> None:
    """aclmdlExecuteV2: a null handle is refused; with a null stream its options do not apply."""
    config = _handles.get(handle, ExecConfigHandle)
    model = RUNTIME.models.get(model_id)
    if stream:
        RUNTIME.check_stream(_handles.get(stream, Stream))
    inputs, outputs = _handles.get(input, Dataset), _handles.get(output, Dataset)
    _execute(model, feeds_of(model, inputs, RUNTIME.memory), outputs, config if stream else None, RUNTIME.memory)
