"""Throwaway credentials for one local cluster: a CA, a serving cert, a service-account
key, an admin token, a token for user ``sidecar`` and the API server's client cert for
kubelets. Generated per run with ``cryptography``; never reused. The CA key stays in the
directory (mode 0600) so a real node's kubelet can be given certificates later
(``issue``)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class ClusterCredentials:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    token_file: Path
    admin_token: str
    sidecar_token: str
    ca_key: Path
    kubelet_client_cert: Path
    """The API server's client certificate towards kubelets (logs, exec, port-forward):
    group system:masters, so a kubelet's webhook authorizer allows it everything."""
    kubelet_client_key: Path


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def generate(
    directory: Path, *, sidecar_groups: tuple[str, ...] = ("system:masters",)
) -> ClusterCredentials:
    """Write the credentials into ``directory`` (created) and return their paths.

    ``sidecar_groups``: the groups of the static token user ``sidecar`` (default:
    cluster-admin through system:masters; empty: only what RBAC grants it, which is
    nothing but the defaults of system:authenticated).
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    lifetime = datetime.timedelta(days=7)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interlink-sidecar-local-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_cert_path = _write(directory / "ca.crt", ca_cert.public_bytes(pem))
    ca_key_path = _write(directory / "ca.key", _pem_key(ca_key))
    serving_cert, serving_key = issue(
        directory,
        "apiserver",
        common_name="localhost",
        dns_names=("localhost", "kubernetes.default.svc"),
        ips=("127.0.0.1",),
        server=True,
    )
    kubelet_client_cert, kubelet_client_key = issue(
        directory,
        "apiserver-kubelet-client",
        common_name="kube-apiserver-kubelet-client",
        organizations=("system:masters",),
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token, sidecar_token = secrets.token_hex(24), secrets.token_hex(24)
    sidecar_line = f"{sidecar_token},sidecar,sidecar-uid"
    if sidecar_groups:
        sidecar_line += f',"{",".join(sidecar_groups)}"'
    return ClusterCredentials(
        ca_cert=ca_cert_path,
        serving_cert=serving_cert,
        serving_key=serving_key,
        service_account_key=_write(directory / "sa.key", _pem_key(sa_key)),
        # kube-apiserver --token-auth-file line: token,user,uid[,"group1,group2"]
        token_file=_write(
            directory / "tokens.csv",
            f'{token},admin,admin-uid,"system:masters"\n{sidecar_line}\n'.encode(),
        ),
        admin_token=token,
        sidecar_token=sidecar_token,
        ca_key=ca_key_path,
        kubelet_client_cert=kubelet_client_cert,
        kubelet_client_key=kubelet_client_key,
    )


def issue(
    directory: Path,
    name: str,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    server: bool = False,
    lifetime: datetime.timedelta = datetime.timedelta(days=7),
) -> tuple[Path, Path]:
    """A certificate (client, and server too with ``server``) signed by the CA in
    ``directory``: writes ``<name>.crt`` and ``<name>.key`` there and returns their paths.
    Kubernetes reads the user from the CN and the groups from the O attributes."""
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return (
        _write(directory / f"{name}.crt", cert.public_bytes(pem)),
        _write(directory / f"{name}.key", _pem_key(key)),
    )


def write_kubeconfig(
    path: Path, *, server: str, ca_cert: Path, user: str, credentials: dict[str, Any]
) -> Path:
    """A kubeconfig at ``path`` (mode 0600) for ``server`` (trusting ``ca_cert``) as
    ``user`` with ``credentials``: ``{"token": ...}`` or ``{"client-certificate": ...,
    "client-key": ...}``. JSON is YAML: every kubeconfig loader reads it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_cert)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
