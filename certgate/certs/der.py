"""The few raw DER reads `cryptography` does not expose (encoded serial, SPKI parts)."""

from __future__ import annotations


def read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at `pos`; raises ValueError when truncated."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The TLVs inside a constructed value."""
    out = []
    while start < end:
        tag, c_start, c_end = read_tlv(data, start)
        out.append((tag, c_start, c_end))
        start = c_end
    return out


def tbs_fields(cert_der: bytes) -> list[tuple[int, int, int]]:
    _, start, _end = read_tlv(cert_der, 0)
    _, tbs_start, tbs_end = read_tlv(cert_der, start)
    return children(cert_der, tbs_start, tbs_end)


DSA_OID = bytes.fromhex("2a8648ce380401")


def serial_bytes(cert_der: bytes) -> bytes:
    """The serial's INTEGER content exactly as encoded (a leading 00 kept, as .NET keeps it)."""
    fields = tbs_fields(cert_der)
    index = 1 if fields[0][0] == 0xA0 else 0
    _, start, end = fields[index]
    return cert_der[start:end]


def _elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(TLV start, content start, end) of each element inside a constructed value."""
    out = []
    while start < end:
        _, content, stop = read_tlv(data, start)
        out.append((start, content, stop))
        start = stop
    return out


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def tbs_bytes(cert_der: bytes) -> bytes:
    """The signed TBSCertificate exactly as encoded."""
    _, start, _end = read_tlv(cert_der, 0)
    _, _, stop = read_tlv(cert_der, start)
    return cert_der[start:stop]


def with_placeholder_dsa_parameters(cert_der: bytes) -> bytes | None:
    """A parseable copy of a certificate whose DSA key omits its (inherited) parameters.

    RFC 5280 lets a DSA key inherit p, q, g from its issuer; `cryptography` refuses such a
    certificate. The copy carries dummy parameters so it parses; callers keep the original DER
    for fingerprints and for OpenSSL, which judges the path. None when the certificate is not
    such a case.
    """
    _, cert_start, cert_end = read_tlv(cert_der, 0)
    tbs, *rest = _elements(cert_der, cert_start, cert_end)
    fields = _elements(cert_der, tbs[1], tbs[2])
    index = 6 if cert_der[fields[0][0]] == 0xA0 else 5
    spki = fields[index]
    alg, key = _elements(cert_der, spki[1], spki[2])
    alg_parts = _elements(cert_der, alg[1], alg[2])
    oid = cert_der[alg_parts[0][1] : alg_parts[0][2]]
    if oid != DSA_OID or len(alg_parts) != 1:
        return None
    dummy = _tlv(0x30, _tlv(0x02, b"\x01") * 3)
    new_alg = _tlv(0x30, cert_der[alg_parts[0][0] : alg_parts[0][2]] + dummy)
    new_spki = _tlv(0x30, new_alg + cert_der[key[0] : key[2]])
    new_tbs = _tlv(0x30, cert_der[tbs[1] : spki[0]] + new_spki + cert_der[spki[2] : tbs[2]])
    return _tlv(0x30, new_tbs + cert_der[rest[0][0] : cert_end])
