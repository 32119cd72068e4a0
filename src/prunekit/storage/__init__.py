"""Files on disk: atomic writes (one helper), JSON and safetensors I/O with clear errors, fingerprints.

Nothing here knows about models or pruning; every other package writes through it.
"""

from .atomic import atomic_folder, atomic_move, atomic_path, atomic_write_bytes, atomic_write_text, check_output
from .figures import save_png
from .fingerprint import file_digest, fingerprint
from .jsonio import jsonable, parse_json, read_json, require, write_json
from .outputs import claim_output, mark_output
from .owned import (MANIFEST_FILE, ChangedFileWarning, FolderChanged, FolderFiles, Snapshot, foreign_entries,
                    prunekit_entries, read_consistently, read_manifest)
from .tensors import check_state_dict_fits, load_tensors, read_metadata, save_tensors, tensors_from_bytes

__all__ = ["MANIFEST_FILE", "ChangedFileWarning", "FolderChanged", "FolderFiles", "atomic_folder", "atomic_move",
           "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output", "check_state_dict_fits", "claim_output",
           "file_digest", "fingerprint", "foreign_entries", "load_tensors", "mark_output", "parse_json",
           "prunekit_entries", "read_consistently", "jsonable", "read_json", "read_manifest", "read_metadata", "require", "Snapshot",
           "save_png", "save_tensors", "tensors_from_bytes", "write_json"]
