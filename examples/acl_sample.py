"""A pyACL-style program, unchanged but for its import: load, describe, execute_v2, read back.

python -m examples.acl_sample [MODEL_REPO]
"""

import sys

import numpy as np

from acl_core import acl
from acl_core.constants import ExecConfigAttr, MallocPolicy, MemcpyKind


def check(ret: int, what: str) -> None:
    if ret != 0:
        raise SystemExit(f"{what} failed: {ret} {acl.get_recent_err_msg()}")


def main(repo: str) -> None:
    check(acl.init(), "aclInit")
    check(acl.rt.set_device(0), "aclrtSetDevice")
    context, ret = acl.rt.create_context(0)
    check(ret, "aclrtCreateContext")
    stream, ret = acl.rt.create_stream()
    check(ret, "aclrtCreateStream")
    model_id, ret = acl.mdl.load_from_file(f"{repo}/mlp/1/model.onnx")
    check(ret, "aclmdlLoadFromFile")
    desc = acl.mdl.create_desc()
    check(acl.mdl.get_desc(desc, model_id), "aclmdlGetDesc")

    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    dev_x, ret = acl.rt.malloc(x.nbytes, MallocPolicy.ACL_MEM_MALLOC_HUGE_FIRST)
    check(ret, "aclrtMalloc")
    check(
        acl.rt.memcpy(dev_x, x.nbytes, acl.util.numpy_to_ptr(x), x.nbytes, MemcpyKind.ACL_MEMCPY_HOST_TO_DEVICE),
        "memcpy",
    )
    inputs, outputs = acl.mdl.create_dataset(), acl.mdl.create_dataset()
    acl.mdl.add_dataset_buffer(inputs, acl.create_data_buffer(dev_x, x.nbytes))
    out_buf = acl.create_data_buffer(0, 0)  # the runtime allocates the output
    acl.mdl.add_dataset_buffer(outputs, out_buf)

    handle = acl.mdl.create_exec_config_handle()
    check(acl.mdl.set_exec_config_opt(handle, ExecConfigAttr.ACL_MDL_STREAM_SYNC_TIMEOUT, 1000), "set opt")
    check(acl.mdl.execute_v2(model_id, inputs, outputs, stream, handle), "aclmdlExecuteV2")
    check(acl.mdl.destroy_exec_config_handle(handle), "destroy handle")

    dims, ret = acl.mdl.get_cur_output_dims(desc, 0)
    y = np.empty(dims["dims"], np.float32)
    out_ptr, out_size = acl.get_data_buffer_addr(out_buf), acl.get_data_buffer_size_v2(out_buf)
    check(
        acl.rt.memcpy(acl.util.numpy_to_ptr(y), y.nbytes, out_ptr, out_size, MemcpyKind.ACL_MEMCPY_DEVICE_TO_HOST),
        "memcpy",
    )
    check(acl.rt.free(out_ptr), "free output")
    check(acl.update_data_buffer(out_buf, 0, 0), "reset output buffer")
    print(f"{acl.mdl.get_output_name_by_index(desc, 0)}: shape {list(y.shape)}, argmax {y.argmax(axis=1).tolist()}")

    for handle_ in (inputs, outputs):
        for i in range(acl.mdl.get_dataset_num_buffers(handle_)):
            acl.destroy_data_buffer(acl.mdl.get_dataset_buffer(handle_, i))
        acl.mdl.destroy_dataset(handle_)
    check(acl.rt.free(dev_x), "free input")
    acl.mdl.destroy_desc(desc)
    check(acl.mdl.unload(model_id), "aclmdlUnload")
    acl.rt.destroy_stream(stream)
    acl.rt.destroy_context(context)
    acl.rt.reset_device(0)
    check(acl.finalize(), "aclFinalize")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/model_repo")
