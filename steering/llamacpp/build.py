"""Build llama.cpp's shared library once per machine, into the workbench cache, keyed by version.

The source is the llama.cpp that the `llama-cpp-python==0.3.36` sdist vendors
(PyPI, checked against its sha256). Only the `llama` target is built, as
shared libraries (`libllama.so` and its ggml libraries), with
`GGML_NATIVE=OFF` so the cached library runs on any x86-64 machine with AVX2,
not only the one that built it: about 1.5 minutes on 2 cores. The result
lands in `<cache>/llama.cpp/<version>/` (`$WORKBENCH_CACHE` moves the cache,
see `interp.cache`) with `layout.json` (the struct layout the bindings check,
`steering.llamacpp.capi`) and `manifest.json` (source, hash, flags). A
folder whose manifest names other flags is rebuilt.

Needs cmake, a C/C++ compiler and pip; uses ninja when it is on PATH, make otherwise.

Example:
    $ python -m steering.llamacpp.build        # builds if missing, else prints where it is
    $ python -m steering.llamacpp.build --check  # exit 1 if not built
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from interp.cache import cache_dir
from steering.llamacpp import capi

SDIST_PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED = "vendor/llama.cpp"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON",
    "-DLLAMA_BUILD_COMMON=OFF", "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_MTMD=OFF", "-DLLAMA_BUILD_APP=OFF", "-DGGML_NATIVE=OFF", "-DGGML_CCACHE=OFF",
)
MANIFEST = "manifest.json"


class BuildError(RuntimeError):
    """The library could not be built; the message names the step and its log."""


def library_dir(version: str = VERSION) -> Path:
    """Where the library of `version` is cached: `<cache>/llama.cpp/<version>`."""
    return cache_dir() / "llama.cpp" / version


def find_library() -> Path | None:
    """The cached library's folder when it is complete and built with today's flags, else None.

    Example:
        >>> find_library()  # doctest: +SKIP
        PosixPath('/root/.cache/workbench/llama.cpp/0.3.36')
    """
    folder = library_dir()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("cmake_flags") != list(CMAKE_FLAGS) or not (folder / capi.LIBRARY).is_file():
        return None
    return folder


def available() -> bool:
    """Whether the cached llama.cpp library is built."""
    return find_library() is not None


def _run(cmd: list[str], log: Path, step: str, cwd: Path | None = None) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError(f"{step} failed (exit {done.returncode}); last lines of {log}:\n" + "\n".join(tail))


def _download(work: Path, log: Path) -> Path:
    """The sdist from PyPI through pip, checked against SDIST_SHA256."""
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
          f"{SDIST_PACKAGE}=={VERSION}", "-d", str(work)], log, "pip download")
    found = sorted(work.glob(f"{SDIST_PACKAGE.replace('-', '_')}-{VERSION}.tar.gz"))
    if not found:
        raise BuildError(f"pip download left no {SDIST_PACKAGE} {VERSION} sdist in {work}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise BuildError(f"{found[0].name} has sha256 {digest}, expected {SDIST_SHA256}")
    return found[0]


def _extract(sdist: Path, work: Path) -> Path:
    """Only the vendored llama.cpp of the sdist."""
    with tarfile.open(sdist) as tar:
        root = tar.getmembers()[0].name.split("/")[0]
        prefix = f"{root}/{VENDORED}/"
        tar.extractall(work, members=[m for m in tar.getmembers() if m.name.startswith(prefix)], filter="data")
    return work / root / VENDORED


def _probe_layout(source: Path, work: Path, log: Path) -> dict[str, dict[str, int]]:
    """Compile `capi.probe_source()` against the vendored headers and read the struct layout it prints."""
    c_file, exe = work / "layout.c", work / "layout"
    c_file.write_text(capi.probe_source())
    compiler = os.environ.get("CC", "cc")
    _run([compiler, "-std=c11", f"-I{source / 'include'}", f"-I{source / 'ggml' / 'include'}", str(c_file),
          "-o", str(exe)], log, "layout probe")
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def build(jobs: int = 2, say: bool = True) -> Path:
    """Download, compile and cache the library; the cache folder.

    Args:
        jobs: parallel compile jobs.
        say: print progress lines.

    Raises:
        BuildError: a missing tool or a failed step (with the log's tail).
    """
    if shutil.which("cmake") is None:
        raise BuildError("cmake is not installed (Debian: apt-get install cmake g++; or pip install cmake)")
    target = library_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
        work = Path(tmp)
        log = work / "build.log"

        def note(text: str) -> None:
            if say:
                print(f"llama.cpp {VERSION}: {text} ({time.monotonic() - started:.0f} s)", flush=True)

        note("downloading the llama-cpp-python sdist from PyPI")
        source = _extract(_download(work, log), work)
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        note(f"configuring ({'ninja' if generator else 'make'}, {jobs} jobs)")
        build_dir = work / "build"
        _run(["cmake", "-S", str(source), "-B", str(build_dir), *generator, *CMAKE_FLAGS], log, "cmake configure")
        note("compiling the llama target")
        _run(["cmake", "--build", str(build_dir), "-j", str(jobs), "--target", "llama"], log, "cmake build")
        out = work / "out"
        out.mkdir()
        for lib in sorted((build_dir / "bin").glob("lib*.so*")):
            shutil.copy2(lib, out / lib.name, follow_symlinks=False)
        if not (out / capi.LIBRARY).exists():
            raise BuildError(f"the build made no {capi.LIBRARY} (see {log})")
        shutil.copy2(source / "include" / "llama.h", out / "llama.h")
        (out / capi.LAYOUT_FILE).write_text(json.dumps(_probe_layout(source, work, log), indent=1))
        manifest = {"source": f"{SDIST_PACKAGE}=={VERSION} sdist, {VENDORED}", "sdist_sha256": SDIST_SHA256,
                    "cmake_flags": list(CMAKE_FLAGS), "build_seconds": round(time.monotonic() - started, 1),
                    "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if target.exists():  # an incomplete or outdated build
            shutil.rmtree(target)
        os.replace(out, target)
    note(f"built into {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steering.llamacpp.build", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is built (exit 1 if not)")
    parser.add_argument("--force", action="store_true", help="rebuild even if it is cached")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    args = parser.parse_args(argv)
    found = find_library()
    if args.check or (found is not None and not args.force):
        print(f"llama.cpp {VERSION}: {found}" if found else f"llama.cpp {VERSION}: not built (make llamacpp)")
        return 0 if found else 1
    try:
        build(args.jobs)
    except BuildError as e:
        print(f"llama.cpp {VERSION}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
