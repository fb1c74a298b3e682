"""Certificates: loading, verification, revocation, key vaults, and the C# view of a certificate.

Four types stand for a certificate; each has one job, so pick by where the certificate comes from
and who reads it:

- `CertificateMaterial` (`material.py`): a certificate we hold and may present, with its private
  key if any and the chain above it. Made from operator uploads (PFX/PEM/DER), key vault secrets
  and the store (`stored.py`); used for TLS server bindings, backend client certificates
  (`authentication-certificate`, backend credentials) and `context.Deployment.Certificates`.
- `CertInfo` (`certinfo.py`): one parsed certificate with the facts verification needs computed
  once (name keys, extensions, fingerprint), equal by DER and shared per process
  (`cached_der`). Only verification, revocation and the expression view read it.
- `PeerCertificates` (`certgate.gateway.tls`): what the other side of a TLS connection sent, as
  DER (leaf and chain), parsed into `CertInfo` only when read. It lives with the TLS code because
  it is read off an OpenSSL connection, client side and server side alike.
- `X509Certificate2` (`x509.py`): the certificate as a policy expression sees it
  (`context.Request.Certificate`, `context.Deployment.Certificates`, `new X509Certificate2(...)`
  in an expression), with .NET's members and `Verify()`; built over a `CertInfo` and, for a
  client, the chain it sent and the `Verifier`.

A client certificate thus goes `PeerCertificates` -> `CertInfo` -> `X509Certificate2`; a stored
one is `CertificateMaterial`, wrapped as `X509Certificate2` only for `context.Deployment`.
This package imports nothing from config/, gateway/, policy/, management/ or the Snapshot
compiler (tests/test_layering.py).
"""
