"""Close SeaweedFS's side doors on the loopback stack: only the S3 API, with a key, reaches data.

`weed mini` also serves a master, a volume server, a filer and an admin server, each over HTTP
and gRPC, none of which checks the S3 identities: any local user could read or delete every
tenant's objects through the filer's HTTP port, or list and remove them with `weed shell`.
Here, in `<stack>/s3/security.toml` (weed reads it from its working folder):
- JWT signing keys for volume and filer reads and writes: their HTTP ports answer 401 without
  a token that only the servers themselves mint;
- mutual TLS on every gRPC port, with a CA made for this stack: a client without its
  certificate (kept 0600 in a 0700 folder) cannot connect.
Generated once per stack and kept, so a restart keeps the same keys.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from pathlib import Path

from devstack import process

__all__ = ["GRPC_COMPONENTS", "JWT_SECTIONS", "write_security"]

GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "msg_broker", "msg_agent", "mq", "client")
JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")


def _certificates(folder: Path) -> None:
    """A CA and one certificate for every component and client (server and client auth)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def valid(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
        return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
            now + datetime.timedelta(days=3650)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        valid(x509.CertificateBuilder())
        .subject_name(name("private-mlops dev seaweedfs CA"))
        .issuer_name(name("private-mlops dev seaweedfs CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    node = (
        valid(x509.CertificateBuilder())
        .subject_name(name("seaweedfs"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    process.write_private(folder / "ca.crt", ca.public_bytes(pem).decode())
    process.write_private(folder / "node.crt", node.public_bytes(pem).decode())
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    process.write_private(folder / "node.key", private.decode())


def write_security(s3_folder: Path) -> Path:
    """`<s3_folder>/security.toml` and its certificates, created once; returns the file."""
    config = s3_folder / "security.toml"
    if config.exists():
        return config
    tls = s3_folder / "tls"
    _certificates(tls)
    lines = []
    for section in JWT_SECTIONS:
        lines += [f"[{section}]", f'key = "{secrets.token_hex(32)}"', "expires_after_seconds = 10", ""]
    lines += ["[access]", "ui = false", "", "[grpc]", f'ca = "{tls / "ca.crt"}"', ""]
    for component in GRPC_COMPONENTS:
        lines += [f"[grpc.{component}]", f'cert = "{tls / "node.crt"}"', f'key = "{tls / "node.key"}"', ""]
    process.write_private(config, "\n".join(lines))
    return config
