"""A fixed-size Bloom filter: finds candidate repeats among millions of keys in a few MiB."""

from __future__ import annotations


class BloomSet:
    """
    A Bloom filter: ``add`` answers whether the key was *maybe* added before (never a false "no").

    Sized for ``expected`` keys (32 to 64 bits each, 4 hashes) at a false-positive rate under one in
    two thousand, at most 16 MiB (a hit is only a candidate: the caller checks it exactly). Keys are
    hashed with Python's ``hash``, salted per process, so which keys collide differs between runs.
    """

    HASHES = 4

    def __init__(self, expected: int | None) -> None:
        bits = 1 << 27 if expected is None else min(1 << 27, max(1 << 16, _next_power_of_two(expected * 32)))
        self._mask = bits - 1
        self._bits = bytearray(bits // 8)

    def __contains__(self, key: object) -> bool:
        digest = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        low, high = digest & 0xFFFF_FFFF, (digest >> 32) | 1
        for i in range(self.HASHES):
            index = (low + i * high) & self._mask
            if not self._bits[index >> 3] & (1 << (index & 7)):
                return False
        return True

    def add(self, key: object) -> bool:
        digest = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        low, high = digest & 0xFFFF_FFFF, (digest >> 32) | 1
        seen = True
        for i in range(self.HASHES):
            index = (low + i * high) & self._mask
            byte, bit = index >> 3, 1 << (index & 7)
            if not self._bits[byte] & bit:
                seen = False
                self._bits[byte] |= bit
        return seen


def _next_power_of_two(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()
