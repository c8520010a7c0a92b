"""Redis over TLS as on Memorystore: the gateway's own client, a real handshake, the health route.

The embedded Valkey is built without TLS, so a TLS terminator (tests/netrelay.py)
sits in front of it with a certificate from a test CA, and the gateway connects
exactly as deployed: REDIS_HOST is an IP address, REDIS_TLS=true, REDIS_CA_CERT
the CA's PEM as Secret Manager delivers it. Memorystore's server certificate
names the instance's address in its subject CN only (no IP subject alternative
name), so the default REDIS_TLS_CHECK_HOSTNAME=false verifies the chain against
the instance's own CA and skips the name; with the check on, only a certificate
carrying the IP as a SAN passes. A certificate from another CA never does.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack.servers import EmbeddedValkey
from shared.config import Settings
from shared.container import Container, set_container
from shared.http import routes
from tests.netrelay import Relay
from tests.support import client

_DAY = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCA:
    """A self-signed CA, like the one Memorystore makes for each instance."""

    __test__ = False

    def __init__(self, name: str) -> None:
        self.key = _key()
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, ip_san: str | None) -> Issued:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
        )
        if ip_san is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip_san))]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem(key))


@pytest.fixture(scope="module")
def instance_ca() -> TestCA:
    return TestCA("Memorystore-like instance CA")


def _terminator(valkey: EmbeddedValkey, issued: Issued, tmp_path: Path) -> Relay:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return Relay(valkey.port, tls=context).start()


@pytest.fixture
def tls_gateway(container: Container, valkey: EmbeddedValkey, tmp_path: Path) -> Iterator[object]:
    """Call with (certificate, CA PEM, check_hostname): the health answer through TLS."""
    made: list[tuple[Relay, Container]] = []

    def health(issued: Issued, ca_pem: str, check_hostname: bool) -> tuple[int, dict, Relay]:
        relay = _terminator(valkey, issued, tmp_path)
        settings = Settings.from_env(
            {
                "ENVIRONMENT": "test",
                "DATABASE_URL": container.settings.database_url,
                "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": str(relay.port),
                "REDIS_TLS": "true",
                "REDIS_CA_CERT": ca_pem,
                "REDIS_TLS_CHECK_HOSTNAME": "true" if check_hostname else "false",
            }
        )
        gateway = Container(settings, pool=container.pool)
        made.append((relay, gateway))
        previous = set_container(gateway)
        try:
            answer = client("history").get(routes.health_path("history"))
        finally:
            set_container(previous)
        return answer.status_code, answer.get_json(), relay

    yield health
    for relay, gateway in made:
        gateway.redis.close()
        relay.stop()


def test_memorystore_shaped_certificate_is_accepted_by_default(tls_gateway, instance_ca):
    """IP only in the subject CN, chain to the instance CA: TLS handshake, PING, health 200."""
    status, body, relay = tls_gateway(
        instance_ca.issue("127.0.0.1", ip_san=None), instance_ca.pem, False
    )
    assert (status, body["redis"]["ok"], body["database"]["ok"]) == (200, True, True)
    assert relay.handshakes >= 1


def test_hostname_check_needs_the_ip_as_a_subject_alternative_name(tls_gateway, instance_ca):
    """With REDIS_TLS_CHECK_HOSTNAME=true the CN-only certificate is refused, an IP SAN passes."""
    status, body, _ = tls_gateway(
        instance_ca.issue("127.0.0.1", ip_san=None), instance_ca.pem, True
    )
    assert status == 503
    assert body["redis"] == {"ok": False, "error": "ConnectionError"}
    status, body, relay = tls_gateway(
        instance_ca.issue("redis", ip_san="127.0.0.1"), instance_ca.pem, True
    )
    assert (status, body["redis"]["ok"]) == (200, True)
    assert relay.handshakes >= 1


@pytest.mark.parametrize("check_hostname", [False, True])
def test_certificate_from_another_ca_is_refused(tls_gateway, instance_ca, check_hostname):
    """A server that does not chain to REDIS_CA_CERT gets no command, whatever its names."""
    impostor = TestCA("another CA").issue("127.0.0.1", ip_san="127.0.0.1")
    status, body, relay = tls_gateway(impostor, instance_ca.pem, check_hostname)
    assert status == 503
    assert body["redis"] == {"ok": False, "error": "ConnectionError"}
    assert relay.accepted >= 1
    assert relay.handshakes == 0


def test_plain_client_cannot_talk_to_a_tls_only_server(container, valkey, tmp_path, instance_ca):
    """REDIS_TLS off against a TLS-only port fails (503), as Memorystore refuses plain clients."""
    relay = _terminator(valkey, instance_ca.issue("127.0.0.1", None), tmp_path)
    settings = Settings(
        environment="test",
        database_url=container.settings.database_url,
        redis_host="127.0.0.1",
        redis_port=relay.port,
    )
    gateway = Container(settings, pool=container.pool)
    previous = set_container(gateway)
    try:
        answer = client("history").get(routes.health_path("history"))
    finally:
        set_container(previous)
        gateway.redis.close()
        relay.stop()
    assert answer.status_code == 503
    assert answer.get_json()["redis"]["ok"] is False
