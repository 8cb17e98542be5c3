"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

`cursor` is an opaque token that only the server issues (API.md §1.5): it carries a checksum of
the listing it came from, so no value a generator draws is a cursor that listing returned, and the
server must answer it `422 VALIDATION` (a tampered cursor). That is the contract, not a mismatch
between the schema and the server, so no generated case sends one: the listings are still fuzzed on
every other parameter, and crates/server/tests/api/hostile_cursors.rs holds the server to refusing
random, forged and tampered cursors.
"""

import json
import re
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
    ("POST", "/v1/credits/reservations/{id}/settle", "credits"):
        "a settlement is at most the reservation's own credits (API.md §6.4)",
    ("PATCH", "/v1/organizations/{orgId}/credit-config", "refillThreshold"):
        "refillThreshold and refillAmount are both set or both null after the patch is merged "
        "with the stored config (API.md §6.5)",
    ("PATCH", "/v1/organizations/{orgId}/credit-config", "autoRefillEnabled"):
        "auto-refill needs both refill values, sent or stored (API.md §6.5)",
}

# Rules whose `422` depends on the DNS at request time: a webhook URL's host must resolve, and
# only to public addresses (API.md §7; adapters-webhook's SenderPolicy). The schema describes the
# URL's shape exactly; whether a well-formed host name resolves is not in the request. Only these
# messages are dropped: any other 422 naming `url` (a shape the schema allows but the server
# refuses) still counts. (method, path template, field) → (message pattern, the rule).
_DNS = re.compile(
    r"^the host \S+ (does not resolve|could not be resolved in time|resolves to a loopback, "
    r"private or link-local address; deliveries go to public addresses only)$"
)
_DNS_RULE = "the URL's host must resolve, and only to public addresses, when it is checked (API.md §7)"
STATE_DEPENDENT_MESSAGES = {
    ("POST", "/v1/webhook-endpoints", "url"): (_DNS, _DNS_RULE),
    ("PATCH", "/v1/webhook-endpoints/{id}", "url"): (_DNS, _DNS_RULE),
}


def _state_dependent(key, entry):
    """The rule that explains this field error, or None when it is not state-dependent."""
    field = entry.get("field")
    if (*key, field) in STATE_DEPENDENT:
        return STATE_DEPENDENT[(*key, field)]
    pattern_and_rule = STATE_DEPENDENT_MESSAGES.get((*key, field))
    if pattern_and_rule and pattern_and_rule[0].match(str(entry.get("message", ""))):
        return pattern_and_rule[1]
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure except ST202 for a 422 whose every field error is a state-dependent
    rule (STATE_DEPENDENT by field, STATE_DEPENDENT_MESSAGES by field and message)."""
    if getattr(failure, "code", None) != "ST202" or response.status_code != 422:
        return True
    try:
        fields = json.loads(response.content)["error"]["details"]["fields"]
    except (ValueError, KeyError, TypeError):
        return True
    key = (case.operation.method.upper(), case.operation.path)
    entries = [entry for entry in fields if isinstance(entry, dict)]
    rules = [_state_dependent(key, entry) for entry in entries]
    if not entries or any(rule is None for rule in rules):
        return True
    for entry, rule in sorted(zip(entries, rules), key=lambda pair: str(pair[0].get("field"))):
        print(f"  state-dependent 422, not counted: {key[0]} {key[1]} {entry.get('field')}: {rule}",
              file=sys.stderr)
    return False
