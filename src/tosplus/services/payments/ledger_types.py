"""The ledger's value types, flags and result codes, after TigerBeetle's data model.

An account has four balances: debits and credits, each pending (reserved) and posted. A transfer moves an amount
from a debit account to a credit account of the same ledger (currency). A pending transfer reserves the amount;
a later transfer posts it (all or part) or voids it, or it expires. Transfers with the LINKED flag form a chain
with the transfer that follows them: all succeed or none does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Any, NamedTuple

MAX_AMOUNT = 2**63 - 1
MAX_ID = 64


class AccountFlags(IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1  # a wallet: can spend only what it holds
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2  # a funding source: can pay out only what it took in


class TransferFlags(IntFlag):
    NONE = 0
    LINKED = 1
    PENDING = 2
    POST_PENDING = 4
    VOID_PENDING = 8


# Results of create_accounts / create_transfers (TigerBeetle's names, where it has one).
OK = "ok"
EXISTS = "exists"  # the same id with the same fields: a retry, nothing done again
EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
LINKED_EVENT_FAILED = "linked_event_failed"
LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
ID_INVALID = "id_invalid"
LEDGER_INVALID = "ledger_invalid"
FLAGS_INVALID = "flags_are_mutually_exclusive"
ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
AMOUNT_INVALID = "amount_invalid"
DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = "transfer_must_have_the_same_ledger_as_accounts"
EXCEEDS_CREDITS = "exceeds_credits"
EXCEEDS_DEBITS = "exceeds_debits"
TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
PENDING_ID_REQUIRED = "pending_id_required"
PENDING_ID_MUST_BE_EMPTY = "pending_id_must_be_empty"
PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS = "pending_transfer_has_different_accounts"
PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"

SUCCEEDED = (OK, EXISTS)


@dataclass(frozen=True, slots=True)
class NewAccount:
    id: str
    ledger: str
    code: int
    flags: int = 0
    user_data: str | None = None


@dataclass(slots=True)
class Account:
    id: str
    ledger: str
    code: int
    flags: int
    user_data: str | None
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    created_at: int = 0

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits: what a wallet holds."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What can still be spent: the balance less what pending debits reserve."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def copy(self) -> Account:
        return Account(
            self.id,
            self.ledger,
            self.code,
            self.flags,
            self.user_data,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
            self.created_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ledger": self.ledger,
            "code": self.code,
            "flags": self.flags,
            "user_data": self.user_data,
            "debits_pending": self.debits_pending,
            "debits_posted": self.debits_posted,
            "credits_pending": self.credits_pending,
            "credits_posted": self.credits_posted,
            "balance": self.balance,
            "available": self.available,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class NewTransfer:
    """A transfer to create. For POST_PENDING / VOID_PENDING, empty accounts and ledger mean "as the pending
    transfer", and amount 0 posts the whole pending amount."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    ledger: str
    code: int = 0
    flags: int = 0
    pending_id: str | None = None
    timeout_s: int = 0  # pending transfers only: expire after this many seconds (0: never)
    user_data: str | None = None

    def fields(self) -> tuple[Any, ...]:
        return (
            self.debit_account_id,
            self.credit_account_id,
            self.amount,
            self.pending_id,
            self.ledger,
            self.code,
            self.flags,
            self.timeout_s,
            self.user_data,
        )


class Transfer(NamedTuple):
    """A transfer as recorded: accounts, ledger and amount resolved (a post records the amount posted).

    A named tuple: batches build thousands of them, and the tuple is the row the database receives as it is.
    """

    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    pending_id: str | None
    ledger: str
    code: int
    flags: int
    timeout_s: int
    user_data: str | None
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "debit_account_id": self.debit_account_id,
            "credit_account_id": self.credit_account_id,
            "amount": self.amount,
            "pending_id": self.pending_id,
            "ledger": self.ledger,
            "code": self.code,
            "flags": self.flags,
            "timeout_s": self.timeout_s,
            "user_data": self.user_data,
            "created_at": self.created_at,
        }


class LedgerInvariantError(RuntimeError):
    """Debits and credits no longer balance: a bug, never a user error. The batch is not written."""
