"""Strategies for the string formats the services' documents use beyond JSON Schema's own.

Loaded by scripts/schemathesis.sh (SCHEMATHESIS_HOOKS), so the requests schemathesis generates from a document
follow every rule the document states, and a refused one is a finding.
"""

import uuid
from datetime import date

import schemathesis
from hypothesis import strategies as st


def _with_check_digit(body: str) -> str:
    """`body` followed by its Luhn check digit."""
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:  # doubled once the check digit stands to its right
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def _months_ahead(months: int) -> str:
    """MM/YY of the month `months` after this one."""
    today = date.today()
    index = today.year * 12 + today.month - 1 + months
    return f"{index % 12 + 1:02d}/{index // 12 % 100:02d}"


# `card-number`: 12–19 digits passing the Luhn check; half of them American Express (34…, 37…; 15 digits), whose
# CVV has 4 digits, so the document's two kinds of card are both generated without filtering.
_amex = st.sampled_from(["34", "37"]).flatmap(lambda p: st.text("0123456789", min_size=12, max_size=12).map(lambda r: p + r))
_other = st.integers(min_value=11, max_value=18).flatmap(
    lambda n: st.sampled_from("4562").flatmap(lambda p: st.text("0123456789", min_size=n - 1, max_size=n - 1).map(lambda r: p + r))
)
schemathesis.openapi.format("card-number", st.one_of(_amex, _other).map(_with_check_digit))
# `card-expiry`: MM/YY not yet past (from next month, so a month turning during the run changes nothing).
schemathesis.openapi.format("card-expiry", st.integers(min_value=1, max_value=120).map(_months_ahead))


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """A fresh Idempotency-Key for every request, as a careful client sends: generated cases reuse header values,
    and a key reused with another body is refused by design (422 idempotency_key_reused, tested in the suites).
    Plan bodies get their usage tiers in ascending order."""
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"st-{uuid.uuid4()}"
    # In every phase (the coverage phase draws boundary values without the generation hooks): the tier order a
    # plan document states in words.
    _with_ascending_tiers(case.body)


def _ascending_tiers(tiers):
    """The same tiers, made to follow the rule the document states in words only (JSON Schema cannot): `up_to`
    strictly ascending, only the last tier open-ended. Tiers without a distinct bound of their own are dropped, so
    every bound stays one the generator drew (within the document's range)."""
    bounds = sorted({t["up_to"] for t in tiers if isinstance(t.get("up_to"), int)})
    kept = min(len(tiers) - 1, len(bounds))
    fixed = [dict(tier, up_to=bound) for tier, bound in zip(tiers[:kept], bounds)]
    return fixed + [dict(tiers[-1], up_to=None)]


def _with_ascending_tiers(body):
    """Plan bodies: usage tiers in ascending order (see `_ascending_tiers`); everything else as generated."""
    features = body.get("features") if isinstance(body, dict) else None
    if isinstance(features, dict):
        for definition in features.values():
            if isinstance(definition, dict) and definition.get("billing") in ("graduated", "volume"):
                if isinstance(definition.get("tiers"), list) and definition["tiers"]:
                    definition["tiers"] = _ascending_tiers(definition["tiers"])
    return body
