"""Every ACL return code, with ACL's exact name and value (acl_base.h, rt_error_codes.h).

No other module of acl_core holds a bare code number: they all import from here.
"""

from typing import Final

ACL_SUCCESS: Final = 0  #: the call succeeded

# 1xxxxx: the caller or the environment (acl_base.h)
ACL_ERROR_INVALID_PARAM: Final = 100000  #: an argument is out of range or of the wrong kind
ACL_ERROR_UNINITIALIZE: Final = 100001  #: aclInit has not been called
ACL_ERROR_REPEAT_INITIALIZE: Final = 100002  #: aclInit called twice
ACL_ERROR_INVALID_FILE: Final = 100003  #: the file is missing or not a regular file
ACL_ERROR_WRITE_FILE: Final = 100004  #: a file could not be written
ACL_ERROR_INVALID_FILE_SIZE: Final = 100005  #: the file size is invalid
ACL_ERROR_PARSE_FILE: Final = 100006  #: the file could not be parsed
ACL_ERROR_FILE_MISSING_ATTR: Final = 100007  #: the file lacks an attribute
ACL_ERROR_FILE_ATTR_INVALID: Final = 100008  #: a file attribute is invalid
ACL_ERROR_INVALID_DUMP_CONFIG: Final = 100009  #: the dump configuration is invalid
ACL_ERROR_INVALID_PROFILING_CONFIG: Final = 100010  #: the profiling configuration is invalid
ACL_ERROR_INVALID_MODEL_ID: Final = 100011  #: no model is loaded under this id
ACL_ERROR_DESERIALIZE_MODEL: Final = 100012  #: the model could not be deserialised
ACL_ERROR_PARSE_MODEL: Final = 100013  #: the bytes are not a model this runtime can parse
ACL_ERROR_READ_MODEL_FAILURE: Final = 100014  #: the model file could not be read
ACL_ERROR_MODEL_SIZE_INVALID: Final = 100015  #: the model size is invalid
ACL_ERROR_MODEL_MISSING_ATTR: Final = 100016  #: the model lacks an attribute
ACL_ERROR_MODEL_INPUT_NOT_MATCH: Final = 100017  #: inputs do not match the model description
ACL_ERROR_MODEL_OUTPUT_NOT_MATCH: Final = 100018  #: outputs do not match the model description
ACL_ERROR_MODEL_NOT_DYNAMIC: Final = 100019  #: the model has no dynamic dimension to set
ACL_ERROR_UNSUPPORTED_DATA_TYPE: Final = 100026  #: the data type is not supported
ACL_ERROR_FORMAT_NOT_MATCH: Final = 100027  #: the data format does not match
ACL_ERROR_INVALID_QUEUE_ID: Final = 100032  #: the queue id is invalid
ACL_ERROR_WAIT_CALLBACK_TIMEOUT: Final = 100036  #: waiting for a callback timed out
ACL_ERROR_REPEAT_FINALIZE: Final = 100037  #: aclFinalize called twice

# 2xxxxx: resources
ACL_ERROR_BAD_ALLOC: Final = 200000  #: memory allocation failed
ACL_ERROR_API_NOT_SUPPORT: Final = 200001  #: the API is not supported
ACL_ERROR_INVALID_DEVICE: Final = 200002  #: the device is invalid
ACL_ERROR_MEMORY_ADDRESS_UNALIGNED: Final = 200003  #: the memory address is not aligned
ACL_ERROR_RESOURCE_NOT_MATCH: Final = 200004  #: the resources do not match
ACL_ERROR_INVALID_RESOURCE_HANDLE: Final = 200005  #: the resource handle is invalid
ACL_ERROR_FEATURE_UNSUPPORTED: Final = 200006  #: the feature is not supported

# 3xxxxx: service state
ACL_ERROR_STORAGE_OVER_LIMIT: Final = 300000  #: storage is over its limit

# 5xxxxx: internal
ACL_ERROR_INTERNAL_ERROR: Final = 500000  #: an unknown internal error
ACL_ERROR_FAILURE: Final = 500001  #: an internal failure
ACL_ERROR_GE_FAILURE: Final = 500002  #: a graph-engine failure
ACL_ERROR_RT_FAILURE: Final = 500003  #: a runtime failure
ACL_ERROR_DRV_FAILURE: Final = 500004  #: a driver failure

# Runtime codes (rt_error_codes.h)
ACL_ERROR_RT_PARAM_INVALID: Final = 107000  #: a runtime parameter is invalid
ACL_ERROR_RT_INVALID_DEVICEID: Final = 107001  #: no device has this id
ACL_ERROR_RT_CONTEXT_NULL: Final = 107002  #: this thread has no current context
ACL_ERROR_RT_STREAM_CONTEXT: Final = 107003  #: the stream belongs to another context
ACL_ERROR_RT_MODEL_CONTEXT: Final = 107004  #: the model belongs to another context
ACL_ERROR_RT_INVALID_HANDLE: Final = 107017  #: the handle is invalid
ACL_ERROR_RT_WAIT_TIMEOUT: Final = 107019  #: a wait timed out
ACL_ERROR_RT_TASK_TIMEOUT: Final = 107020  #: a task timed out
ACL_ERROR_RT_FEATURE_NOT_SUPPORT: Final = 207000  #: the runtime does not support the feature
ACL_ERROR_RT_MEMORY_ALLOCATION: Final = 207001  #: device memory could not be allocated
ACL_ERROR_RT_MEMORY_FREE: Final = 207002  #: device memory could not be freed
ACL_ERROR_RT_NO_DEVICE: Final = 207004  #: no device is available
ACL_ERROR_RT_DEVICE_OOM: Final = 207018  #: the device is out of memory
ACL_ERROR_RT_INTERNAL_ERROR: Final = 507000  #: a runtime internal error
ACL_ERROR_RT_MODEL_EXECUTE: Final = 507011  #: the model failed while executing
ACL_ERROR_RT_STREAM_SYNC_TIMEOUT: Final = 507046  #: the stream task outlived its timeout
ACL_ERROR_RT_EVENT_SYNC_TIMEOUT: Final = 507047  #: the event task outlived its timeout

#: value -> name, for every code above
NAMES: Final[dict[int, str]] = {
    value: name for name, value in dict(globals()).items() if name.startswith("ACL_") and isinstance(value, int)
}


def name_of(code: int) -> str:
    """ACL's name for ``code``, or ``ACL_ERROR_UNKNOWN(<code>)`` for a value ACL does not define."""
    return NAMES.get(code, f"ACL_ERROR_UNKNOWN({code})")
