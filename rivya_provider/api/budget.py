"""Credit guardrails: what a number of generations will cost, checked before any is created.

The price comes from :meth:`ModelStatus.credits_per_generation` (the catalogue's ``base_credits``
for FIXED billing, else the documented local price). A cap (``max_credits``) and the account
balance are compared with the estimate before the first create, so a typo in a catalogue filter
fails up front instead of half-way through a paid batch.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from rivya_provider.api.errors import RivyaValidationError

if TYPE_CHECKING:
    from rivya_provider.api.catalogue import ModelInfo, ModelStatus
    from rivya_provider.api.client import RivyaClient

log = logging.getLogger("rivya_provider.api")

__all__ = ["CreditEstimate", "check_before_create", "check_budget", "check_max_credits"]


@dataclasses.dataclass(frozen=True)
class CreditEstimate:
    """What ``count`` generations of ``model`` cost at most.

    :param model: the model priced.
    :param count: generations to create.
    :param price: credits per generation (``None``: no price is known for this model).
    :param source: ``catalogue``, ``local`` (the documented price table) or ``none``.
    """

    model: str
    count: int
    price: int | None
    source: str

    @classmethod
    def of(cls, status: ModelStatus, count: int) -> CreditEstimate:
        """The estimate for ``count`` generations of the model ``status`` describes."""
        price, source = status.credits_per_generation()
        return cls(status.model_id, count, price, source)

    @property
    def total(self) -> int | None:
        """Credits for all of them (``None`` when the price is unknown)."""
        return None if self.price is None else self.price * self.count

    def describe(self) -> str:
        """E.g. ``40 x 4 = 160 credits (price from the catalogue)``."""
        if self.total is None:
            return f"{self.count} generations of {self.model} at an unknown price"
        return (
            f"{self.count} x {self.price} = {self.total} credits (price of {self.model} from "
            f"the {'catalogue' if self.source == 'catalogue' else 'documented price table'})"
        )


def check_max_credits(max_credits: object) -> int | None:
    """``max_credits`` if it is ``None`` or a whole number >= 0.

    :raises RivyaValidationError: naming ``max_credits``.
    """
    if max_credits is None:
        return None
    if isinstance(max_credits, bool) or not isinstance(max_credits, int) or max_credits < 0:
        raise RivyaValidationError(
            f"max_credits: must be a whole number of credits >= 0, or None (got {max_credits!r})",
            field="max_credits",
        )
    return max_credits


def check_budget(estimate: CreditEstimate, *, max_credits: int | None, balance: int | None) -> None:
    """Refuse work whose estimate is over ``max_credits`` or over the ``balance``.

    :raises RivyaValidationError: ``max_credits`` (over the cap, or no price to check it with)
        or ``check_balance`` (over the balance), naming both figures.
    """
    total = estimate.total
    if max_credits is not None:
        if total is None:
            raise RivyaValidationError(
                f"max_credits: cannot be checked: {estimate.describe()}; the catalogue gives no "
                "fixed price for this model and the documented table has none",
                field="max_credits",
            )
        if total > max_credits:
            raise RivyaValidationError(
                f"max_credits: the estimate {estimate.describe()} is over the cap of "
                f"{max_credits}; nothing was submitted",
                field="max_credits",
            )
    if balance is not None and total is None:
        raise RivyaValidationError(
            f"check_balance: cannot be checked: {estimate.describe()}", field="check_balance"
        )
    if balance is not None and total is not None and total > balance:
        raise RivyaValidationError(
            f"check_balance: the estimate {estimate.describe()} is over the account's balance "
            f"of {balance} credits; nothing was submitted",
            field="check_balance",
        )


def check_before_create(
    client: RivyaClient,
    model: str,
    count: int,
    *,
    max_credits: int | None = None,
    check_balance: bool = False,
) -> CreditEstimate:
    """What must hold before ``count`` generations of ``model`` are created; sends no create.

    The model is not listed as uncallable (a quick catalogue lookup; an unreachable catalogue
    falls back to the local rules), and the estimate is within ``max_credits`` and, with
    ``check_balance``, within the balance (``GET /api/v1/credits``).

    :raises RivyaValidationError: ``model``, ``max_credits`` or ``check_balance``.
    """
    from rivya_provider.api.catalogue import ModelCatalogue
    from rivya_provider.api.client import RivyaClient

    def lookup() -> list[ModelInfo]:
        # A short retry budget: an unreachable catalogue must not hold the work up a minute.
        with RivyaClient(client.config.quick()) as quick:
            return quick.list_models()

    status = ModelCatalogue(client.config.base_url).status(model, lookup)
    if not status.callable:
        raise RivyaValidationError(
            f"model: {model} is listed with api_status {status.api_status!r}; only "
            "'available' models take generations through the API",
            field="model",
        )
    estimate = CreditEstimate.of(status, count)
    balance = client.get_credits().current_credits if check_balance else None
    check_budget(estimate, max_credits=max_credits, balance=balance)
    log.info("Estimated cost: %s", estimate.describe())
    return estimate
