"""The ACL error codes the client side names (values from ACL, ../shared/reference/acl.md).

Repeated here because the producer must not import acl_core; tests/unit/producer/test_wire.py
checks every name and value against acl_core.codes.
"""

from typing import Final

# Answered by the client side itself: the wire layer, batch input files.
ACL_ERROR_INVALID_PARAM: Final = 100000
ACL_ERROR_INVALID_FILE: Final = 100003
ACL_ERROR_UNSUPPORTED_DATA_TYPE: Final = 100026
ACL_ERROR_STORAGE_OVER_LIMIT: Final = 300000
# Answered by a worker when the run failed, not the input: worth another try (batch --retries).
ACL_ERROR_INTERNAL_ERROR: Final = 500000
ACL_ERROR_RT_FAILURE: Final = 500003
ACL_ERROR_RT_MEMORY_ALLOCATION: Final = 207001
ACL_ERROR_RT_DEVICE_OOM: Final = 207018
ACL_ERROR_RT_INTERNAL_ERROR: Final = 507000
ACL_ERROR_RT_MODEL_EXECUTE: Final = 507011
ACL_ERROR_RT_STREAM_SYNC_TIMEOUT: Final = 507046
ACL_ERROR_RT_EVENT_SYNC_TIMEOUT: Final = 507047

#: code -> name, of every code above
NAMES: Final = {value: name for name, value in dict(globals()).items() if name.startswith("ACL_ERROR_")}
#: codes of a failed run worth another try: the run timed out or the device failed, not the input
TRANSIENT: Final = frozenset(
    {
        ACL_ERROR_INTERNAL_ERROR,
        ACL_ERROR_RT_FAILURE,
        ACL_ERROR_RT_MEMORY_ALLOCATION,
        ACL_ERROR_RT_DEVICE_OOM,
        ACL_ERROR_RT_INTERNAL_ERROR,
        ACL_ERROR_RT_MODEL_EXECUTE,
        ACL_ERROR_RT_STREAM_SYNC_TIMEOUT,
        ACL_ERROR_RT_EVENT_SYNC_TIMEOUT,
    }
)
