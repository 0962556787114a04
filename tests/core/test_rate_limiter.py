from tosplus.core.ingest import RateLimiter


def test_burst_then_sustained_rate() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    t0 = 1_000_000
    assert all(limiter.allow("d", t0) for _ in range(5))
    assert not limiter.allow("d", t0)
    assert limiter.allow("d", t0 + 100)  # 0.1 s at 10/s refills one
    assert not limiter.allow("d", t0 + 100)
    assert limiter.allow("other", t0)  # per device
