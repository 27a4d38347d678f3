"""Reading and writing the JSON files of datasets: errors name the file; writes create the
folder and are compact and key-sorted (byte-identical for equal objects)."""
import json
import os
from pathlib import Path


def read_json(path: os.PathLike, hint: str = ""):
    """Load a JSON file; missing or corrupt files raise errors that name the file (and
    append ``hint``, e.g. how to rebuild it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing dataset file {path}{hint}")
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt JSON file {path}: {e}{hint}") from e


def write_json(obj, path: os.PathLike) -> None:
    """Write ``obj`` to ``path`` as compact, key-sorted JSON, creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, sort_keys=True, separators=(",", ":"))
