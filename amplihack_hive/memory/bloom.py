"""A Bloom filter: compact, mergeable "have I (probably) seen this key?" sets.

Anti-entropy uses these to summarise which fact ids an agent holds without sending the ids.
No I/O here; :meth:`BloomFilter.to_bytes` gives the wire form.

Sizing follows the textbook optimum for ``n`` expected items and false-positive rate ``p``:
``m = ceil(-n ln p / (ln 2)^2)`` bits and ``k = round(m/n ln 2)`` hash functions. The ``k``
positions come from one BLAKE2b digest by double hashing, ``g_i(x) = h1(x) + i*h2(x) mod m``
(Kirsch & Mitzenmacher, "Less Hashing, Same Performance", ESA 2006), which keeps the
asymptotic false-positive rate of ``k`` independent hashes.

A filter sized for ``n`` keeps its promised rate only up to ``n`` items; past that it
saturates (the earlier design this project replaces stalled exactly so). Callers watch
:meth:`BloomFilter.estimated_fp_rate` and rebuild a larger filter instead of overfilling one.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib

from amplihack_hive.errors import InvalidInputError

#: Wire format: magic, version, reserved byte, k (u16), m (u64), count (u64), then
#: ceil(m/8) bytes of bits (bit j is ``byte[j // 8] >> (j % 8) & 1``), then a CRC-32 of
#: everything before it (u32). All integers big-endian.
_MAGIC = b"AHBF"
_VERSION = 1
_HEADER = struct.Struct(">4sBxHQQ")
_TRAILER = struct.Struct(">I")
_MAX_K = 0xFFFF

_LN2 = math.log(2)


def _digest_pair(key: object) -> tuple[int, int]:
    """The two 64-bit base hashes of ``key`` for double hashing (h2 forced odd, never 0)."""
    if isinstance(key, str):
        data = key.encode()
    elif isinstance(key, bytes | bytearray | memoryview):
        data = bytes(key)
    else:
        raise InvalidInputError(f"bloom keys are str or bytes, not {type(key).__name__}")
    digest = hashlib.blake2b(data, digest_size=16).digest()
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big") | 1


class BloomFilter:
    """``m`` bits, ``k`` hash functions. A ``str`` key and its UTF-8 bytes are the same key."""

    __slots__ = ("_bits", "_count", "_k", "_m")

    def __init__(self, m: int, k: int) -> None:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise InvalidInputError(f"bloom filter size m must be an int >= 1, got {m!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
            raise InvalidInputError(
                f"bloom hash count k must be an int in [1, {_MAX_K}], got {k!r}"
            )
        self._m = m
        self._k = k
        self._count = 0
        self._bits = bytearray((m + 7) // 8)

    @classmethod
    def for_capacity(cls, expected: int, fp_rate: float = 0.01) -> BloomFilter:
        """A filter that answers with false-positive rate ~``fp_rate`` after ``expected`` adds."""
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 1:
            raise InvalidInputError(f"expected item count must be an int >= 1, got {expected!r}")
        if (
            isinstance(fp_rate, bool)
            or not isinstance(fp_rate, int | float)
            or not 0.0 < fp_rate < 1.0
        ):
            raise InvalidInputError(f"fp_rate must be a number in (0, 1), got {fp_rate!r}")
        m = math.ceil(-expected * math.log(fp_rate) / (_LN2 * _LN2))
        k = max(1, round(m / expected * _LN2))
        return cls(m, k)

    # -- shape --------------------------------------------------------------------------------

    @property
    def m(self) -> int:
        """Number of bits."""
        return self._m

    @property
    def k(self) -> int:
        """Number of hash functions (bit positions per key)."""
        return self._k

    def __len__(self) -> int:
        """Keys added, counting a key only when it set at least one new bit.

        So adding the same key twice counts once; a new key that collides completely with
        earlier ones (a false positive) is not counted either, so this may undercount slightly.
        """
        return self._count

    def __repr__(self) -> str:
        return f"BloomFilter(m={self._m}, k={self._k}, count={self._count})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BloomFilter):
            return NotImplemented
        return (self._m, self._k, self._count, self._bits) == (
            other._m,
            other._k,
            other._count,
            other._bits,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    # -- membership ---------------------------------------------------------------------------

    def add(self, key: str | bytes) -> bool:
        """Add ``key``; True if it was not (as far as the filter can tell) already present."""
        h1, h2 = _digest_pair(key)
        m = self._m
        bits = self._bits
        new = False
        # Kirsch & Mitzenmacher 2006: g_i = h1 + i*h2 (mod m), i = 0..k-1.
        for i in range(self._k):
            j = (h1 + i * h2) % m
            mask = 1 << (j & 7)
            byte = bits[j >> 3]
            if not byte & mask:
                bits[j >> 3] = byte | mask
                new = True
        if new:
            self._count += 1
        return new

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str | bytes | bytearray | memoryview):
            return False
        h1, h2 = _digest_pair(key)
        m = self._m
        bits = self._bits
        for i in range(self._k):
            j = (h1 + i * h2) % m
            if not bits[j >> 3] & (1 << (j & 7)):
                return False
        return True

    # -- combining and estimating -------------------------------------------------------------

    def union(self, other: BloomFilter) -> BloomFilter:
        """A new filter holding every key of ``self`` and ``other`` (same ``m`` and ``k``)."""
        if not isinstance(other, BloomFilter):
            raise InvalidInputError(
                f"can only union with a BloomFilter, not {type(other).__name__}"
            )
        if (self._m, self._k) != (other._m, other._k):
            raise InvalidInputError(
                f"bloom filters differ in shape: m={self._m}, k={self._k} "
                f"vs m={other._m}, k={other._k}"
            )
        merged = BloomFilter(self._m, self._k)
        size = len(self._bits)
        ored = int.from_bytes(self._bits, "little") | int.from_bytes(other._bits, "little")
        merged._bits = bytearray(ored.to_bytes(size, "little"))
        # The true count of the union is unknown (the two sets may overlap). Estimate it from
        # the fill (Swamidass & Baldi 2007), kept between the two obvious bounds and, like every
        # count here, at most the number of set bits (each counted add set a new bit).
        low = max(self._count, other._count)
        high = min(self._count + other._count, merged._set_bits())
        merged._count = min(high, max(low, merged._estimated_items()))
        return merged

    def _set_bits(self) -> int:
        return int.from_bytes(self._bits, "little").bit_count()

    def _estimated_items(self) -> int:
        """Items implied by the number of set bits: ``-(m/k) ln(1 - X/m)``."""
        x = self._set_bits()
        if x >= self._m:
            return self._count
        return round(-(self._m / self._k) * math.log1p(-x / self._m))

    def fill_ratio(self) -> float:
        """Fraction of bits set."""
        return self._set_bits() / self._m

    def estimated_fp_rate(self) -> float:
        """Probability that an absent key is reported present, given the bits set now.

        ``(X/m)^k`` for ``X`` set bits: exact for the current bit array under the usual
        independent-uniform-hash model, so it also reflects overfilling and unions.
        """
        return self.fill_ratio() ** self._k

    # -- wire form ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned, checksummed serialization; read back with :meth:`from_bytes`."""
        body = _HEADER.pack(_MAGIC, _VERSION, self._k, self._m, self._count) + bytes(self._bits)
        return body + _TRAILER.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> BloomFilter:
        """Parse :meth:`to_bytes` output; anything short, corrupt or unknown is refused."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(f"bloom filter bytes expected, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _HEADER.size + _TRAILER.size:
            raise InvalidInputError(f"bloom filter data too short ({len(data)} bytes)")
        body, (crc,) = data[: -_TRAILER.size], _TRAILER.unpack(data[-_TRAILER.size :])
        if zlib.crc32(body) != crc:
            raise InvalidInputError("bloom filter data corrupt (checksum mismatch)")
        magic, version, k, m, count = _HEADER.unpack_from(body)
        if magic != _MAGIC:
            raise InvalidInputError("not a bloom filter (bad magic)")
        if version != _VERSION:
            raise InvalidInputError(f"unsupported bloom filter version {version}")
        if m < 1 or k < 1:
            raise InvalidInputError(f"bloom filter header invalid: m={m}, k={k}")
        bits = body[_HEADER.size :]
        if len(bits) != (m + 7) // 8:
            raise InvalidInputError(
                f"bloom filter has {len(bits)} bytes of bits, header says m={m} bits"
            )
        if m % 8 and bits[-1] >> (m % 8):
            raise InvalidInputError("bloom filter has bits set past m")
        bloom = cls(m, k)
        bloom._bits = bytearray(bits)
        if count > bloom._set_bits():
            # Each counted add sets at least one new bit, so count never exceeds the set bits.
            raise InvalidInputError(f"bloom filter count {count} exceeds its set bits")
        bloom._count = count
        return bloom
