"""The lab's own CA and the upstream host's certificate: https egress checks with a certificate the nodes trust."""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Pair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def cert(cn: str, names: list[str], issuer: Pair | None, days: int) -> Pair:
    """A certificate for `names` (DNS names or IPs) signed by issuer, or with no issuer a self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=days))
         .issuer_name(issuer[0].subject if issuer else subject)
         .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if names:
        alt: list[x509.GeneralName] = []
        for n in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def pem(pair: Pair) -> tuple[str, str]:
    """(certificate, unencrypted PKCS#8 key) as PEM text."""
    key = pair[1].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pair[0].public_bytes(serialization.Encoding.PEM).decode(), key.decode()


def make(lab_dir: Path, lab: str, names: list[str], days: int = 365) -> tuple[str, str, str]:
    """A CA for this lab and a server certificate for `names`, signed by it: (ca, cert, key) as PEM. The CA's
    certificate is kept in the lab's directory (ca.crt) for the operator's own clients; its key is not kept."""
    ca = cert(f"dnet lab {lab} CA", [], None, days)
    server = cert(names[0], names, ca, days)
    ca_pem = pem(ca)[0]
    (lab_dir / "ca.crt").write_text(ca_pem)
    server_pem, key = pem(server)
    return ca_pem, server_pem, key
