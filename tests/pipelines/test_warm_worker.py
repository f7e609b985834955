"""The warm worker (pipelines/warm_worker.py) held to what kfp.local's SubprocessRunner does with
the same command: a real kfp lightweight component's command, run both ways, must print the same,
write the same, run its atexit handlers and exit with the same code (0, 2 permanent, 75 transient).
The worker is started for real (a process listening on a Unix socket) in a private runtime folder,
with a small preload so it starts in about a second. No `from __future__ import annotations` here:
kfp reads the component's annotations as types."""

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import dsl
from kfp.local.subprocess_task_handler import replace_python_executable

from pipelines import warm_worker


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _probe(code: int, seconds: float, out: dsl.OutputPath(str)) -> None:  # type: ignore[valid-type]
    import atexit
    import os
    import sys
    import time
    from pathlib import Path

    print("VAR=" + os.environ.get("PROBE_VAR", "<unset>"))
    print("CANARY=" + os.environ.get("WORKER_ONLY", "<unset>"))
    print("CWD=" + os.getcwd())
    print("PATH1=" + sys.path[1])  # [0]: the folder kfp's executor wrote the component to
    import dask.config
    import fsspec.config

    print("FSSPEC=" + str(fsspec.config.conf.get("s3", {}).get("endpoint_url", "<unset>")))
    print("DASK=" + str(dask.config.get("temporary-directory")))
    with open(out + ".pid", "w") as pid:
        pid.write(str(os.getpid()))
    atexit.register(Path(out + ".atexit").write_text, "ran")
    time.sleep(seconds)
    with open(out, "w") as written:
        written.write(f"code {code}")
    if code:
        sys.exit(code)


def _command(tmp: Path, code: int, seconds: float = 0.0) -> list[str]:
    container = _probe.component_spec.implementation.container
    executor_input = {
        "inputs": {"parameterValues": {"code": code, "seconds": seconds}},
        "outputs": {"parameters": {"out": {"outputFile": str(tmp / "out")}}, "outputFile": str(tmp / "executor.json")},
    }
    args = [json.dumps(executor_input) if arg == "{{$}}" else arg for arg in container.args]
    # as kfp.local's SubprocessTaskHandler hands it on: python3 replaced by this interpreter
    return replace_python_executable([*container.command, *args], sys.executable)


@pytest.fixture(scope="module")
def worker() -> Iterator[warm_worker.WarmWorker]:
    import tempfile

    runtime = tempfile.mkdtemp(dir="/tmp")  # short: a Unix socket's path holds 108 bytes
    saved = dict(os.environ)
    os.environ.update(
        {
            warm_worker.DIRECTORY_VARIABLE: runtime,
            # fsspec and dask read the environment when imported (Feast and MLflow pull them in)
            warm_worker.PRELOAD_VARIABLE: "kfp.dsl.executor_main,fsspec,dask.config",
            "WORKER_ONLY": "1",
            "FSSPEC_S3_ENDPOINT_URL": "http://the-worker-starters-store:1",
            "DASK_TEMPORARY_DIRECTORY": "/the-worker-starters-folder",
        }
    )
    try:
        started = warm_worker.connect(timeout=60)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield started
    os.environ[warm_worker.DIRECTORY_VARIABLE] = runtime
    try:
        assert warm_worker.stop_all(), "the worker wrote no pid file to stop it by"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(runtime, ignore_errors=True)


def _lines(output: str) -> list[str]:
    return [
        line
        for line in output.splitlines()
        if line.split("=")[0] in ("VAR", "CANARY", "CWD", "PATH1", "FSSPEC", "DASK")
    ]


@pytest.mark.parametrize("code", [0, 2, 75])
def test_a_task_in_the_worker_does_what_kfp_locals_subprocess_does(
    worker: warm_worker.WarmWorker, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfp.local import subprocess_task_handler

    results = {}
    for name, run in (("kfp-local", subprocess_task_handler.run_local_subprocess), ("warm", worker.run)):
        folder = tmp_path / name
        folder.mkdir()
        assert warm_worker.is_lightweight_command(_command(folder, code))
        task_env = {
            "PROBE_VAR": name,
            "FSSPEC_S3_ENDPOINT_URL": f"http://{name}:9",
            "DASK_TEMPORARY_DIRECTORY": f"/{name}",
        }
        returned = run(full_command=_command(folder, code), env_vars=task_env)
        printed = capsys.readouterr().out
        results[name] = (returned, _lines(printed), (folder / "out").read_text(), (folder / "out.atexit").read_text())
    (subprocess_code, subprocess_lines, *subprocess_files), (warm_code, warm_lines, *warm_files) = results.values()
    assert subprocess_code == warm_code == code
    assert [line.replace("kfp-local", "warm") for line in subprocess_lines] == warm_lines
    assert warm_lines[0] == "VAR=warm" and warm_lines[1] == "CANARY=<unset>", warm_lines  # the task's env, whole
    assert warm_lines[2] == f"CWD={os.getcwd()}" and warm_lines[3] == f"PATH1={os.getcwd()}"
    # what a preloaded library read at import comes from the task's environment, not the worker's
    assert warm_lines[4:] == ["FSSPEC=http://warm:9", "DASK=/warm"], warm_lines
    assert subprocess_files == warm_files == [f"code {code}", "ran"]
    pid = int((tmp_path / "warm" / "out.pid").read_text())
    assert pid != os.getpid() and pid != int((tmp_path / "kfp-local" / "out.pid").read_text())


def test_a_client_that_goes_away_takes_its_task_with_it(worker: warm_worker.WarmWorker, tmp_path: Path) -> None:
    request = {"argv": _command(tmp_path, 0, seconds=60), "env": dict(os.environ), "cwd": os.getcwd()}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(worker.path))
        payload = json.dumps(request).encode()
        conn.sendall(warm_worker._HEADER.pack(b"R", len(payload)) + payload)
        deadline = time.monotonic() + 30
        while not (tmp_path / "out.pid").exists():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        pid = int((tmp_path / "out.pid").read_text())
        os.kill(pid, 0)  # positive control: the task runs while its client is there
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and b"Z" not in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]:
        assert time.monotonic() < deadline, "the task outlived its client"
        time.sleep(0.05)
    assert not (tmp_path / "out").exists()


def test_any_other_command_runs_as_kfp_local_runs_it(
    worker: warm_worker.WarmWorker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["sh", "-c", f"echo from-a-shell; echo $$ > {tmp_path / 'pid'}; exit 3"]
    assert not warm_worker.is_lightweight_command(command)
    assert worker.run(command, {}) == 3
    assert "from-a-shell" in capsys.readouterr().out


def test_a_runtime_folder_others_can_enter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(warm_worker.DIRECTORY_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = tmp_path / f"mlops-warm-{os.getuid()}"
    folder.mkdir(mode=0o700)
    assert warm_worker._directory() == folder  # positive control: the user's own 0700 folder is used
    folder.chmod(0o755)
    with pytest.raises(warm_worker.WarmUnavailable, match="0700"):
        warm_worker.connect(timeout=5)


def test_new_code_gets_a_new_worker_and_the_old_one_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    import pipelines.caching

    runtime = tempfile.mkdtemp(dir="/tmp")  # short: a Unix socket's path holds 108 bytes
    monkeypatch.setenv(warm_worker.DIRECTORY_VARIABLE, runtime)
    monkeypatch.setenv(warm_worker.PRELOAD_VARIABLE, "kfp.dsl.executor_main")
    first = warm_worker.connect(timeout=60)
    assert warm_worker.connect(timeout=60).path == first.path  # positive control: the same code, the same worker
    old_pid = int(first.path.with_suffix(".pid").read_text())
    monkeypatch.setattr(pipelines.caching, "code_fingerprint", lambda repo=None: "an edit")
    second = warm_worker.connect(timeout=60)
    try:
        assert second.path != first.path and second.path.name.split("-")[0] == first.path.name.split("-")[0]
        deadline = time.monotonic() + 10
        while Path(f"/proc/{old_pid}").exists() and b") Z" not in Path(f"/proc/{old_pid}/stat").read_bytes():
            assert time.monotonic() < deadline, "the worker for the old code was left running"
            time.sleep(0.05)
        # a run that held the stopped worker goes on: its next task reaches this code's worker
        task = Path(runtime) / "task"
        task.mkdir()
        assert first.run(_command(task, 0), {"PROBE_VAR": "after"}) == 0
        assert first.path == second.path and (task / "out").read_text() == "code 0"
    finally:
        warm_worker.stop_all()
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_runtime_folder_too_deep_for_a_socket_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 90)
    deep.mkdir(mode=0o700)
    monkeypatch.setenv(warm_worker.DIRECTORY_VARIABLE, str(deep))
    with pytest.raises(warm_worker.WarmUnavailable, match="too deep"):
        warm_worker.connect(timeout=5)


@pytest.mark.parametrize("args", [["--help"], ["no-such-command"], ["compile", "no-such-pipeline"]])
def test_a_module_in_the_worker_answers_as_a_fresh_interpreter(
    worker: warm_worker.WarmWorker, args: list[str], tmp_path: Path
) -> None:
    """What the tests' CLI runner sends (tests/cli_runner.py): `python -m mlops.cli ARGS` in a child,
    stdout and stderr apart, the exit code, the call's own environment. The same call in a fresh
    interpreter is the reference, for a success, a usage error and a refusal."""
    import subprocess

    env = {**os.environ, "MLOPS_HOME": str(tmp_path), "NO_COLOR": "1"}
    fresh = subprocess.run([sys.executable, "-m", "mlops.cli", *args], env=env, cwd=os.getcwd(),
                           capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    code, out, err = worker.run_module("mlops.cli", args, env, Path(os.getcwd()), timeout=120)
    assert (code, out) == (fresh.returncode, fresh.stdout)
    assert err.replace("\n", " ").split()[-12:] == fresh.stderr.replace("\n", " ").split()[-12:], (err, fresh.stderr)
    assert (code == 0) == (args == ["--help"]) and (out if code == 0 else err).strip()


def test_a_module_past_its_timeout_is_killed(worker: warm_worker.WarmWorker, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    script = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    (tmp_path / "sleeper.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with pytest.raises(TimeoutError, match="ran past 2"):
        worker.run_module("sleeper", [], env, tmp_path, timeout=2)
    pid = int(marker.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and b"Z" not in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]:
        assert time.monotonic() < deadline, "the child outlived its timeout"
        time.sleep(0.05)
