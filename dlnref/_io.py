"""Result files: checked before any work starts, then written whole or not at all."""

import contextlib
import os
import tempfile

import numpy as np

from .errors import InputError

#: Longest file name (in bytes) that common file systems take; a longer one is refused before any work.
MAX_NAME_BYTES = 255


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    A crash or an exception while writing leaves ``path`` as it was (absent
    or with its old content), never half written, and the temporary file is
    removed. An ``OSError`` while writing (a full disk, say) is raised again
    with ``path`` as its file name, never the temporary one. The temporary
    name keeps ``path``'s extension, so writers that pick a format from it
    (matplotlib, NumPy) write the same format; a writer that appends its own
    extension to a name without one must be told the format instead (as
    :func:`dlnref.plots.save` does).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    stem, suffix = os.path.splitext(os.path.basename(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{stem}.tmp-", suffix=suffix)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), path) from error
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:   # name the user's file, not the temporary one (say "No space left on device: x.png")
        if error.filename not in (None, tmp):   # another file's error, named already (atomic_paths nest)
            raise
        raise OSError(error.errno, error.strerror or str(error), path) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def check_writable_folder(name, folder):
    """Raise :class:`InputError` unless files can be written into ``folder`` (created later if absent).

    Parameters
    ----------
    name : str
        How the user gave the folder (say ``"--out"``), for the message.
    folder : str or os.PathLike

    Returns
    -------
    str
        ``folder`` as a string.
    """
    folder = os.fspath(folder)
    if not folder.strip():
        raise InputError(f"{name} {folder!r} is empty; give a folder to write into (. for this one)")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{name} {folder} is a file, not a folder; give a folder to write into")
    problem = _unwritable(folder)
    if problem:
        raise InputError(f"{name} {folder}: {problem}")
    return folder


def check_writable_file(name, path, extensions=None, default_extension=None):
    """Return the path a result file will be written to, or raise :class:`InputError` saying why it cannot be.

    The file's folder must exist (a mistyped folder is refused, not created).

    Parameters
    ----------
    name : str
        How the user gave the path (say ``"--plot"``), for the message.
    path : str or os.PathLike
    extensions : collection of str or None
        Known extensions, without the dot (say ``{"png", "pdf"}``); None accepts any.
    default_extension : str or None
        Added (with a dot) to a path that has no extension.

    Returns
    -------
    str
        ``path``, with ``default_extension`` added where it had none.
    """
    path = os.fspath(path)
    if not path.strip():
        raise InputError(f"{name} {path!r} is empty; give a file name, such as figure.{default_extension or 'png'}")
    if os.path.isdir(path):
        raise InputError(f"{name} {path} is a folder; give a file name, such as "
                         f"{os.path.join(path, 'figure.' + (default_extension or 'png'))}")
    base = os.path.basename(path)
    extension = base.rpartition(".")[2] if "." in base else ""   # ".png" is a PNG without a stem, not a hidden file
    if not extension and default_extension:
        path, extension = f"{path}.{default_extension}", default_extension
    if extensions is not None and extension.lower() not in extensions:
        raise InputError(f"{name} {path}: unknown file type {('.' + extension) if extension else '(none)'}; "
                         f"use one of {', '.join('.' + e for e in sorted(extensions))}")
    if os.path.isdir(path):
        raise InputError(f"{name} {path} is a folder; give a file name")
    folder = os.path.dirname(path) or "."
    if len(os.fsencode(os.path.basename(path))) > MAX_NAME_BYTES:
        raise InputError(f"{name} {path[:80]}...: the file name is longer than {MAX_NAME_BYTES} bytes, the most a "
                         "file system takes; give a shorter name")
    if not os.path.exists(folder):   # a mistyped folder is not created
        raise InputError(f"{name} {path}: the folder {folder} does not exist; create it first")
    problem = _unwritable(folder)
    if problem:
        raise InputError(f"{name} {path}: {problem}")
    return path


def _unwritable(folder):
    """Why no file can be written into ``folder`` (created if absent), or None when one can."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"cannot write into {existing} ({error.strerror or error})"
    return None


def json_default(value):
    """JSON form of a NumPy scalar or array (``json.dump``'s ``default``); anything else is a bug: ``TypeError``."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
