"""The cluster's per-tenant Redis, as rendered (pipelines.tenant_stores.tenant_redis), on a real redis-server.

No Kubernetes here: the test runs the rendered init container's script and the rendered
redis.conf, with the volume paths moved into a temporary folder, and then attacks the server
the way a pod in the tenant's namespace could.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator

import pytest
import redis

from components.platform.readonly import reader_name
from devstack import process
from pipelines.tenant_stores import tenant_redis

pytestmark = pytest.mark.integration
PASSWORD = "fraud-online-store-password"
READER_PASSWORD = "fraud-transformer-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("tenant-redis")
    etc, acl = root / "etc", root / "acl"
    etc.mkdir()
    acl.mkdir()
    objects = tenant_redis("fraud")
    data = objects[0]["data"]
    for name, text in data.items():
        (etc / name).write_text(text.replace("/etc/redis", str(etc)).replace("/acl/", f"{acl}/"))
    (init,) = objects[1]["spec"]["template"]["spec"]["initContainers"]
    literals = {entry["name"]: entry["value"] for entry in init["env"] if "value" in entry}  # TENANT, READER
    secrets = {"REDIS_PASSWORD": PASSWORD, "READER_PASSWORD": READER_PASSWORD}
    assert {entry["name"] for entry in init["env"]} == {*literals, *secrets}, "every variable the script reads"
    environment = {"PATH": os.environ["PATH"], **literals, **secrets}
    subprocess.run(["sh", str(etc / "write-acl.sh")], env=environment, check=True)
    assert stat.S_IMODE((acl / "users.acl").stat().st_mode) == 0o600
    users = (acl / "users.acl").read_text()
    assert PASSWORD not in users and READER_PASSWORD not in users  # only their sha256
    port = process.free_port_base(1)
    config = etc / "redis.conf"
    config.write_text(config.read_text() + f"port {port}\nbind 127.0.0.1\ndir {root}\n")
    pid_file = root / "redis.pid"
    pid = process.start([process.find_binary("redis-server"), str(config)], root / "redis.log", pid_file)
    process.wait_until(
        lambda: bool(redis.Redis(port=port, username="fraud", password=PASSWORD).ping()),
        what="tenant redis",
        log=root / "redis.log",
        pid=pid,
        timeout=30,
    )
    yield port
    process.stop(pid_file)


def test_the_tenant_uses_its_store(server: int) -> None:
    """The positive control: what Feast's online writes and reads need."""
    client = redis.Redis(port=server, username="fraud", password=PASSWORD)
    client.hset(b"entity\x00fraud", mapping={b"_ts:transactions": b"1", b"feature": b"0.5"})
    assert client.hget(b"entity\x00fraud", b"feature") == b"0.5"
    assert client.delete(b"entity\x00fraud") == 1


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET", "maxmemory", "0"), ("CONFIG", "GET", "*"), ("SHUTDOWN",),
     ("ACL", "LIST"), ("KEYS", "*"), ("SAVE",), ("MONITOR",), ("CLIENT", "KILL", "TYPE", "normal")],
)  # fmt: skip
def test_the_tenant_cannot_administer_its_store(server: int, command: tuple[str, ...]) -> None:
    client = redis.Redis(port=server, username="fraud", password=PASSWORD)
    assert client.ping()  # authenticated: the refusal below is a permission, not a login failure
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command(*command)


def reader(server: int) -> redis.Redis:
    return redis.Redis(port=server, username=reader_name("fraud"), password=READER_PASSWORD)


def test_the_transformers_reader_reads_features_and_writes_nothing(server: int) -> None:
    """issue 29: the transformer held the tenant's read-write Redis user. Its reader reads what
    Feast's online path reads (positive control first); every write and administration is NOPERM;
    and the tenant's own user, the control broken on purpose, still writes, so the refusals are
    the reader's rule and not a store that takes no writes."""
    key = b"entity\x00reader-probe\x00fraud"
    tenant = redis.Redis(port=server, username="fraud", password=PASSWORD)
    tenant.hset(key, mapping={b"_ts:transactions": b"1", b"feature": b"0.5"})
    try:
        with reader(server).pipeline(transaction=False) as pipe:  # as components/serving/online_reader.py reads
            pipe.hmget(key, [b"feature", b"_ts:transactions"])
            assert pipe.execute() == [[b"0.5", b"1"]]
        assert reader(server).hgetall(key) == {b"_ts:transactions": b"1", b"feature": b"0.5"}
        for command in [("HSET", key, b"feature", b"9"), ("DEL", key), ("HDEL", key, b"feature"), ("FLUSHALL",),
                        ("CONFIG", "SET", "maxmemory", "0"), ("SET", b"other", b"1"), ("EXPIRE", key, 1),
                        ("KEYS", "*"), ("SCAN", 0), ("ACL", "LIST")]:  # fmt: skip
            with pytest.raises(redis.exceptions.NoPermissionError):
                reader(server).execute_command(*command)
        assert reader(server).hget(key, b"feature") == b"0.5", "nothing the reader tried changed the hash"
        assert tenant.hset(key, b"feature", b"0.7") == 0 and tenant.hget(key, b"feature") == b"0.7"
    finally:
        tenant.delete(key)


def test_nobody_else_gets_in(server: int) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def login(**credentials: str) -> None:  # a refused login is an answer: no retries
        redis.Redis(port=server, retry=Retry(NoBackoff(), 0), **credentials).ping()  # type: ignore[arg-type]

    with pytest.raises(redis.exceptions.AuthenticationError):
        login()  # the default user is off
    with pytest.raises(redis.exceptions.AuthenticationError):
        login(username="fraud", password="not-it")
    with pytest.raises(redis.exceptions.AuthenticationError):
        login(username="default", password=PASSWORD)
