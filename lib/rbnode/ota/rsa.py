"""RSA signature check, PKCS#1 v1.5 with SHA-256 (RFC 8017 8.2.2), public exponent 65537:
what tools/ota.py signs a bundle with (the `cryptography` package).

    verify(modulus, signature, digest) -> True / False

One modular power with a 17-bit exponent: 17 multiplications of key-sized numbers (a few
hundred bytes of heap for a 3072-bit key). The whole encoded block is rebuilt and compared,
never parsed, so no padding-parsing flaw can accept a forged signature.
"""
E = 65537
# DER of DigestInfo(AlgorithmIdentifier(sha256, NULL), OCTET STRING of 32 bytes)
SHA256_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"


def verify(modulus, signature, digest):
    """modulus: the key's n, big-endian bytes; signature: bytes; digest: SHA-256 (32 bytes)
    of the signed data."""
    k = len(modulus)
    n = int.from_bytes(modulus, "big")
    if k < 256 or len(signature) != k or len(digest) != 32:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    em = pow(s, E, n).to_bytes(k, "big")
    t = SHA256_INFO + digest
    return em == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


def key_bytes(text):
    """ota.key (base64 of the RSA modulus, tools/ota.py pubkey) -> bytes, or ValueError."""
    from binascii import a2b_base64
    try:
        k = a2b_base64(text)
    except ValueError:
        raise ValueError("ota.key is not base64 (paste the line `make ota-key` printed)")
    if not 256 <= len(k) <= 512 or not k[0]:
        raise ValueError("ota.key is %d bytes: a 2048- to 4096-bit RSA public key is 256 to "
                         "512 (paste the line `make ota-key` printed)" % len(k))
    return k
