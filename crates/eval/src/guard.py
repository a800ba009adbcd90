# tenbits sandbox preamble (crates/eval/src/guard.py, filled in and run by
# tenbits_eval::sandbox). It sets resource limits, then disables or guards
# what a checked program must not do, in the spirit of human-eval's
# reliability_guard, then runs solution.py from the current (temporary)
# directory and, if that returns, prints a nonce line so that the caller can
# tell "the tests ran to the end" from "the program exited early".
#
# This guards against accidents (a model's code deleting files, looping,
# forking, phoning home), not against code written to escape: Python-level
# patches can be undone by a determined program.

import builtins
import faulthandler
import io
import _io
import os
import posix
import resource
import shutil
import socket
import _socket
import subprocess
import sys

_CPU_SECONDS = @@CPU@@
_MEMORY_BYTES = @@MEMORY@@
_FILE_BYTES = @@FSIZE@@
_NONCE = "@@NONCE@@"

with open("solution.py", encoding="utf-8") as _f:
    _SOURCE = _f.read()


def _limit(which, soft, hard=None):
    hard = soft if hard is None else hard
    _, cur_hard = resource.getrlimit(which)
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        pass


_limit(resource.RLIMIT_AS, _MEMORY_BYTES)
_limit(resource.RLIMIT_DATA, _MEMORY_BYTES)
_limit(resource.RLIMIT_CPU, _CPU_SECONDS, _CPU_SECONDS + 1)
_limit(resource.RLIMIT_FSIZE, _FILE_BYTES)
_limit(resource.RLIMIT_CORE, 0)
_limit(resource.RLIMIT_NOFILE, 64)
# No new processes or threads (the kernel ignores this for root, hence the
# guards on fork and exec below).
_limit(resource.RLIMIT_NPROC, 1)

faulthandler.disable()
os.environ["OMP_NUM_THREADS"] = "1"

_TMP = os.path.realpath(os.getcwd())
_realpath = os.path.realpath
_readlink = os.readlink
_isabs = os.path.isabs
_join = os.path.join
_write = os.write


def _deny(what):
    raise PermissionError(f"tenbits sandbox: {what} is not allowed")


def _inside(path, dir_fd=None):
    if isinstance(path, int):
        return True  # an open descriptor: only ones opened inside exist
    try:
        p = os.fsdecode(os.fspath(path))
    except TypeError:
        return False
    if dir_fd is not None and not _isabs(p):
        p = _join(_readlink(f"/proc/self/fd/{dir_fd}"), p)
    real = _realpath(p)
    return real == _TMP or real.startswith(_TMP + os.sep)


def _check(path, what, dir_fd=None):
    if not _inside(path, dir_fd):
        raise PermissionError(f"tenbits sandbox: {what} outside the temporary directory "
                              f"is not allowed: {path!r}")


# --- files: writing anywhere but the temporary directory -------------------

_WRITE_MODES = set("wax+")
_open = _io.open


def _guarded_open(file, mode="r", *args, **kwargs):
    if isinstance(mode, str) and _WRITE_MODES & set(mode):
        _check(file, "writing")
    return _open(file, mode, *args, **kwargs)


builtins.open = io.open = _io.open = _guarded_open


class _GuardedFileIO(_io.FileIO):
    def __init__(self, file, mode="r", closefd=True, opener=None):
        if isinstance(mode, str) and _WRITE_MODES & set(mode):
            _check(file, "writing")
        super().__init__(file, mode, closefd, opener)


io.FileIO = _io.FileIO = _GuardedFileIO

_os_open = os.open
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
    if flags & _WRITE_FLAGS:
        _check(path, "writing", dir_fd)
    return _os_open(path, flags, mode, dir_fd=dir_fd)


os.open = posix.open = _guarded_os_open


def _guard_paths(name, what, params, modules=(os, posix)):
    """Guards a function whose path arguments `params` (name, position, its
    dir_fd keyword) must lie inside the temporary directory."""
    for module in modules:
        f = getattr(module, name, None)
        if f is None:
            continue

        def guarded(*args, _f=f, **kwargs):
            for pname, pos, fd_kw in params:
                if pos < len(args):
                    value = args[pos]
                elif pname in kwargs:
                    value = kwargs[pname]
                else:
                    continue
                _check(value, what, kwargs.get(fd_kw) if fd_kw else None)
            return _f(*args, **kwargs)

        guarded.__name__ = name
        setattr(module, name, guarded)


for _name in ["remove", "unlink", "rmdir", "mkdir", "chmod", "chown", "lchown", "lchmod",
              "truncate", "utime", "mkfifo", "mknod", "chflags", "lchflags", "setxattr",
              "removexattr"]:
    _guard_paths(_name, f"os.{_name}", [("path", 0, "dir_fd")])
for _name in ["removedirs", "makedirs"]:
    _guard_paths(_name, f"os.{_name}", [("name", 0, None)], modules=(os,))
for _name in ["rename", "replace", "link"]:
    _guard_paths(_name, f"os.{_name}", [("src", 0, "src_dir_fd"), ("dst", 1, "dst_dir_fd")])
_guard_paths("renames", "os.renames", [("old", 0, None), ("new", 1, None)], modules=(os,))
_guard_paths("symlink", "os.symlink", [("dst", 1, "dir_fd")])

_rmtree = shutil.rmtree


def _guarded_rmtree(path, *args, **kwargs):
    _check(path, "shutil.rmtree")
    return _rmtree(path, *args, **kwargs)


shutil.rmtree = _guarded_rmtree
_shutil_chown = shutil.chown


def _guarded_shutil_chown(path, *args, **kwargs):
    _check(path, "shutil.chown")
    return _shutil_chown(path, *args, **kwargs)


shutil.chown = _guarded_shutil_chown

# --- processes: no new ones, no signals, no identity changes ---------------


def _denied(what):
    def f(*args, **kwargs):
        _deny(what)

    f.__name__ = what.rsplit(".", 1)[-1]
    return f


for _name in ["system", "popen", "fork", "forkpty", "execv", "execve", "execl", "execle",
              "execlp", "execlpe", "execvp", "execvpe", "spawnl", "spawnle", "spawnlp",
              "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "posix_spawn",
              "posix_spawnp", "kill", "killpg", "setuid", "seteuid", "setreuid", "setresuid",
              "setgid", "setegid", "setregid", "setresgid", "chroot", "pidfd_open"]:
    for _module in (os, posix):
        if hasattr(_module, _name):
            setattr(_module, _name, _denied(f"os.{_name}"))

for _name in ["Popen", "run", "call", "check_call", "check_output", "getoutput",
              "getstatusoutput"]:
    setattr(subprocess, _name, _denied(f"subprocess.{_name}"))

# --- network: no sockets, no name lookups -----------------------------------


class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        _deny("opening a socket")


class _NoRawSocket(_socket.socket):
    def __init__(self, *args, **kwargs):
        _deny("opening a socket")


socket.socket = socket.SocketType = _NoSocket
_socket.socket = _socket.SocketType = _NoRawSocket
for _module in (socket, _socket):
    for _name in ["socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo",
                  "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"]:
        if hasattr(_module, _name):
            setattr(_module, _name, _denied(f"socket.{_name}"))

# --- modules that would reach around the guards -----------------------------

for _name in ["ctypes", "_ctypes", "cffi", "_cffi_backend", "psutil", "resource", "ipdb",
              "joblib", "tkinter", "_tkinter", "_posixsubprocess", "pty", "sqlite3", "_sqlite3",
              "dbm", "_dbm", "_gdbm", "readline", "multiprocessing", "_multiprocessing"]:
    sys.modules[_name] = None

del _name, _module, _f

# --- run the program ----------------------------------------------------------

_code = compile(_SOURCE, "solution.py", "exec")
exec(_code, {"__name__": "__main__", "__builtins__": builtins, "__file__": "solution.py"})
try:
    sys.stdout.flush()
except Exception:
    pass
_write(1, ("\n" + _NONCE + "\n").encode())
