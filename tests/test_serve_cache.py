"""The memory cache of `imapcrypt serve`: bounded by bytes, least recently used out."""

from __future__ import annotations

from imapcrypt.serve.cache import OriginalCache


def key(uid: int) -> tuple[str, str, int, int]:
    return ("acct", "INBOX", 7, uid)


def test_the_least_recently_used_leave_first_and_the_bytes_stay_bounded() -> None:
    cache: OriginalCache[bytes] = OriginalCache(limit=30)
    for uid in (1, 2, 3):
        cache.put(key(uid), bytes([uid]) * 10, 10)
    assert cache.get(key(1)) == b"\x01" * 10  # 1 is now the most recently used
    cache.put(key(4), b"\x04" * 10, 10)
    assert cache.get(key(2)) is None  # so 2 went
    assert [cache.get(key(uid)) is not None for uid in (1, 3, 4)] == [True, True, True]
    assert cache.size == 30


def test_a_message_larger_than_the_whole_cache_is_not_held() -> None:
    cache: OriginalCache[bytes] = OriginalCache(limit=30)
    cache.put(key(1), b"x" * 10, 10)
    cache.put(key(2), b"y" * 31, 31)
    assert cache.get(key(2)) is None
    assert cache.get(key(1)) == b"x" * 10
    cache.put(key(1), b"z" * 20, 20)  # the same message again replaces, not adds
    assert cache.size == 20
