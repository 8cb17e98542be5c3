"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

`cursor` is an opaque token that only the server issues (API.md §1.5): it carries a checksum of
the listing it came from, so no value a generator draws is a cursor that listing returned, and the
server must answer it `422 VALIDATION` (a tampered cursor). That is the contract, not a mismatch
between the schema and the server, so no generated case sends one: the listings are still fuzzed on
every other parameter, and crates/server/tests/api/hostile_cursors.rs holds the server to refusing
random, forged and tampered cursors.
"""

import json
import sys

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    # Every phase sends through here (the coverage phase does not apply map_query hooks).
    if case.query and "cursor" in case.query:
        case.query = {name: value for name, value in case.query.items() if name != "cursor"}


# Rules whose `422` depends on what is stored, not on the request's shape, so no schema can say
# which requests pass them: (method, path template, field the 422 names) → the rule. Everything
# the request alone decides is in the schema (bounds, patterns, enums, nullability).
STATE_DEPENDENT = {
    ("POST", "/v1/credits/reservations/{reservationId}/settle", "credits"):
        "a settlement is at most the reservation's own credits (API.md §6.4)",
    ("PATCH", "/v1/organizations/{orgId}/credit-config", "refillThreshold"):
        "refillThreshold and refillAmount are both set or both null after the patch is merged "
        "with the stored config (API.md §6.5)",
    ("PATCH", "/v1/organizations/{orgId}/credit-config", "autoRefillEnabled"):
        "auto-refill needs both refill values, sent or stored (API.md §6.5)",
}


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure except ST202 for a 422 from one of the STATE_DEPENDENT rules."""
    if getattr(failure, "code", None) != "ST202" or response.status_code != 422:
        return True
    try:
        fields = json.loads(response.content)["error"]["details"]["fields"]
    except (ValueError, KeyError, TypeError):
        return True
    key = (case.operation.method.upper(), case.operation.path)
    named = {entry.get("field") for entry in fields if isinstance(entry, dict)}
    if not named or any((*key, field) not in STATE_DEPENDENT for field in named):
        return True
    for field in sorted(named):
        print(f"  state-dependent 422, not counted: {key[0]} {key[1]} {field}: {STATE_DEPENDENT[(*key, field)]}",
              file=sys.stderr)
    return False
