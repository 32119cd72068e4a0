"""Files on disk: atomic writes (one helper), JSON and safetensors I/O with clear errors, fingerprints.

Nothing here knows about models or pruning; every other package writes through it.
"""

from .atomic import atomic_folder, atomic_path, atomic_write_bytes, atomic_write_text, check_output
from .fingerprint import file_digest, fingerprint
from .jsonio import read_json, require, write_json
from .tensors import check_state_dict_fits, load_tensors, read_metadata, save_tensors

__all__ = ["atomic_folder", "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output",
           "check_state_dict_fits", "file_digest", "fingerprint", "load_tensors", "read_json", "read_metadata", "require",
           "save_tensors", "write_json"]
