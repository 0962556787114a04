"""Fixtures shared by the payment tests."""

from tests.services.payments.receiver import receiver  # noqa: F401  (the merchant's web server, a fixture)
