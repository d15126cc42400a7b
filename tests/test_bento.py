"""The bento: its package list covers what the service imports, and the built bento serves the CPU's auto backend."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.requirements import Requirement

from earshot.model.device import bf16_matrix_units
from servers import clean_env, free_port, stop

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def _bento_packages() -> list[str]:
    return yaml.safe_load((ROOT / "bentofile.yaml").read_text())["python"]["packages"]


def _closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, as installed here (extras left out)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(line))
    return seen


def test_bento_packages_are_pyproject_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {_name(p) for p in _bento_packages()} == {_name(p) for p in project["dependencies"]}
    wheels = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["python"]["wheels"]
    assert wheels == [f"dist/earshot-{project['version']}-py3-none-any.whl"]


def test_the_service_runs_with_only_the_bentos_packages(tiny_model, tmp_path: Path) -> None:
    """Start the service class on a model with the default backend and answer a request while every
    installed package outside the bento's list (and what it requires) is hidden from imports.

    Hiding, rather than listing what got imported: libraries import optional packages when they are
    installed (transformers takes scipy, numpy's f2py charset_normalizer) and do without them in the bento.
    """
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    # earshot itself comes from the bento's wheel; what it requires must come from the list
    allowed = sorted(_closure({_name(p) for p in _bento_packages()} | {"bentoml"}) | {"earshot"})
    script = f"""
import json, re, sys
from importlib.metadata import packages_distributions
allowed = set(json.loads(sys.argv[1]))
owners = packages_distributions()
hidden = {{top for top, dists in owners.items()
          if not any(re.sub(r"[-_.]+", "-", d).lower() in allowed for d in dists)}}
for top in hidden:  # None in sys.modules: imports fail and importlib.util.find_spec says "not installed"
    sys.modules[top] = None
from earshot.service.schemas import FeedbackItem
from earshot.service.service import build_service
from earshot.service.settings import Settings
service = build_service(Settings.from_env({{"EARSHOT_MODEL": {str(folder)!r}}}))()
answer = service.classify([FeedbackItem(text="my bag never arrived")])
print(json.dumps({{"backend": service.model.backend, "heads": sorted(answer[0].heads),
                  "hidden": sorted(hidden & {{"sklearn", "scipy", "cleanlab", "ray"}})}}))
"""
    run = subprocess.run([sys.executable, "-c", script, json.dumps(allowed)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["backend"] == ("bf16" if bf16_matrix_units() else "onnx-int8")  # auto on this CPU, really loaded
    assert result["heads"] == ["pain_points", "sentiment"]
    assert {"sklearn", "ray"} <= set(result["hidden"])  # the test extras really were out of reach


@pytest.mark.integration
def test_make_bento_then_the_bento_serves_int8_onnx_from_its_wheel(tmp_path: Path) -> None:
    env = clean_env(BENTOML_HOME=str(tmp_path / "bentoml"), HF_HUB_OFFLINE="1")
    built = subprocess.run(["make", "-C", str(ROOT), "bento"], env=env, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    tag = re.search(r'Successfully built Bento\(tag="([^"]+)"\)', built.stdout + built.stderr).group(1)
    bento = tmp_path / "bentoml" / "bentos" / tag.split(":")[0] / tag.split(":")[1]
    wheel = next((bento / "env" / "python" / "wheels").glob("earshot-*.whl"))
    site = tmp_path / "site"  # the wheel as pip would install it: pure Python, so unzipping is the same
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        names = set(archive.namelist())
    assert {"earshot/service/service.py", "earshot/model/default/model.safetensors",
            "earshot/model/default/onnx/model-int8.onnx"} <= names
    assert (site / "earshot-0.1.0.dist-info" / "top_level.txt").read_text().split() == ["earshot"]
    assert {name.split("/")[0] for name in names} == {"earshot", "earshot-0.1.0.dist-info"}
    only_wheel = {**env, "PYTHONPATH": str(site)}
    for name, works in (("earshot.model", True), ("model", False), ("training", False), ("service", False)):
        run = subprocess.run([sys.executable, "-c", f"import {name}"], env=only_wheel, cwd=tmp_path,
                             capture_output=True)
        assert (run.returncode == 0) == works, name
    export = site / "earshot" / "model" / "default" / "onnx"
    before = {p.name: p.stat().st_mtime_ns for p in export.iterdir()}
    port = free_port()
    # PYTHONPATH first: earshot is imported from the bento's wheel, not from this checkout
    process = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", tag, "--port", str(port)],
                               env={**env, "PYTHONPATH": str(site)}, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, "the bento's server exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        info = httpx.get(f"http://127.0.0.1:{port}/model", timeout=10).json()
        assert info["backend"] == ("bf16" if bf16_matrix_units() else "onnx-int8")
        answer = httpx.post(f"http://127.0.0.1:{port}/classify", timeout=30,
                            json={"items": [{"text": "@Parcelo you lost my parcel"}]})
        assert answer.status_code == 200
        assert answer.json()[0]["heads"]["pain_points"]["labels"][0]["label"] == "Lost or damaged item"
        assert answer.json()[0]["model_version"] == info["version"]
    finally:
        stop(process)
    assert {p.name: p.stat().st_mtime_ns for p in export.iterdir()} == before  # served the shipped export
