#!/usr/bin/env python3
"""Reads a PostgreSQL log written with `log_statement = 'all'` and `log_line_prefix = '@@ %d %p '` and tells, per
database, each kind of transaction the services ran (a BEGIN … COMMIT block, or one statement on its own), how
many per payment, with its statements: the breakdown of a payment's database work. Used by `payments-trace.sh`.

Each transaction is named by the step it belongs to (the first of its statements a rule below recognises); the
steps of the bench's own loop (signing up, creating and canceling the subscription, polling it) are kept apart
from the payment's."""
import collections
import json
import re
import sys

# A subscription read by id: the bench's status polls, the read its cancel request makes before its transaction,
# and some of the services' own reads are this one statement; the bench says how many of them are its own
# (`--polls=`: its polls plus one per cancel), the rest are the services'.
FIND_SUBSCRIPTION = "subscription: a subscription read by id (not the bench's polls)"
POLLS = "bench: poll the subscription (and its cancel's read)"
PING = re.compile(r'^SELECT \$1$|^SELECT 1$')

# (step, part of the payment?, pattern on a statement): the first rule a transaction's statement matches names it.
RULES = [
    ("payment: attempt recorded (pending)", True, r'^INSERT INTO "transactions"'),
    ("payment: gateway key looked up before the attempt", True, r'^SELECT "transactions"."id", "transactions"."status" FROM "transactions" WHERE \("transactions"."idempotency_key" = '),
    ("payment: attempt settled + outbox event", True, r'FROM "transactions" WHERE \("transactions"."id" = \$\d+\) LIMIT \$\d+ FOR UPDATE|^UPDATE "transactions" SET "status" = '),
    ("payment: outbox row marked sent", True, r'^UPDATE "outbox" SET "sent_at" = CURRENT_TIMESTAMP WHERE \(\("outbox"."id" = '),
    ("payment: gateway's event recorded (+ pending lookup)", True, r'INSERT INTO gateway_events|INSERT INTO "gateway_events"'),
    ("payment: gateway's event, pending attempt looked up", True, r'FROM "transactions" WHERE \(\("transactions"."status" = \$\d+\) AND \(\("transactions"."gateway_reference"'),
    ("payment: webhook delivery logged (worker)", True, r'^INSERT INTO "webhook_deliveries"'),
    ("subscription: amount due asked by the payment service", True, r'FROM \("invoices" (INNER|LEFT OUTER) JOIN "subscriptions"|^SELECT "invoices".*"invoices"."status" = \$\d+\)\)$'),
    ("subscription: webhook applied (invoice paid, subscription active)", True, r'^INSERT INTO "inbound_webhooks"'),
    ("bench: create subscription (+ open invoice, number)", False, r'^INSERT INTO "subscriptions"'),
    ("bench: cancel subscription", False, r'"cancel_reason" = '),
    (FIND_SUBSCRIPTION, True, r'^SELECT "subscriptions"\."id".* FROM "subscriptions" WHERE \("subscriptions"\."id" = \$\d+\) LIMIT \$\d+$'),
    ("outbox relay poll (per interval, not per payment)", False, r'FROM "outbox" WHERE'),
    ("connection setup", False, r'^SET |pg_type'),
]

LINE = re.compile(r'^@@ (\S+) (\d+) .*?(?:LOG|STATEMENT):\s+(?:statement|execute ([^:]*)): (.*)$')


def normalize(sql):
    sql = re.sub(r"'[^']*'", "?", sql)
    return re.sub(r"\s+", " ", sql).strip()


def statements(path):
    """(database, backend pid, statement, prepared name or None) in the log's order, statements spread over several
    lines joined."""
    found = []
    with open(path, errors="replace") as log:
        for raw in log:
            line = raw.rstrip("\n")
            m = LINE.match(line)
            if m:
                found.append([m.group(1), m.group(2), m.group(4), m.group(3)])
            elif line.startswith("@@"):
                continue
            elif found and line.startswith(("\t", " ")) and not found[-1][2].endswith("\0"):
                found[-1][2] += " " + line.strip()
    # A statement prepared anew at each execution (diesel's rule for UPDATEs, inserts with DEFAULT, sql_query) runs
    # under a name used once; a kept one under the same name again and again.
    uses = collections.Counter((db, pid, name) for db, pid, _, name in found if name)
    return [(db, pid, normalize(sql), bool(name) and (uses[(db, pid, name)] == 1 or name == "<unnamed>"))
            for db, pid, sql, name in found]


def transactions(path):
    """Yields (database, [statements], pings) per transaction: a BEGIN … COMMIT block, or one statement on its
    own. A pool's `SELECT 1` before handing a connection out belongs to what the connection is taken for: it is
    counted with the next transaction on the same backend (`pings`). A statement is (sql, prepared anew?)."""
    open_blocks, pings = {}, collections.Counter()
    for db, pid, sql, anew in statements(path):
        key = (db, pid)
        word = sql.upper()
        if key not in open_blocks and PING.match(sql):
            pings[key] += 1
        elif word in ("BEGIN", "START TRANSACTION") or word.startswith("BEGIN "):
            open_blocks[key] = []
        elif word in ("COMMIT", "ROLLBACK", "END"):
            block = open_blocks.pop(key, None)
            if block is not None:
                yield db, block, pings.pop(key, 0)
        elif key in open_blocks:
            open_blocks[key].append((sql, anew))
        else:
            yield db, [(sql, anew)], pings.pop(key, 0)


def step_of(statements):
    for name, paid, pattern in RULES:
        if any(re.search(pattern, s) for s, _ in statements):
            return name, paid
    return "other: " + statements[0][0][:100], False


def main():
    path, payments = sys.argv[1], int(sys.argv[2])
    polls = next((int(a.split("=", 1)[1]) for a in sys.argv[3:] if a.startswith("--polls=")), 0)
    counts, per_statement, ping_counts = collections.Counter(), collections.Counter(), collections.Counter()
    anew_counts = collections.Counter()
    shapes = {}
    for db, block, pings in transactions(path):
        step, paid = step_of(block)
        if step == FIND_SUBSCRIPTION and polls > 0:
            polls -= 1
            step, paid = POLLS, False
        key = (db, step, paid)
        counts[key] += 1 + pings
        per_statement[key] += len(block) + pings
        ping_counts[key] += pings
        anew_counts[key] += sum(1 for _, anew in block if anew)
        shapes.setdefault(key, block)
    rows = sorted(counts, key=lambda k: (not k[2], k[0], -counts[k]))
    total_tx = total_st = total_pings = total_anew = 0
    print("| database | step | transactions per payment | of which pool checks (SELECT 1) | statements per payment "
          "| of which prepared anew |")
    print("|---|---|---|---|---|---|")
    for key in rows:
        db, step, paid = key
        tx, st, pg = counts[key] / payments, per_statement[key] / payments, ping_counts[key] / payments
        anew = anew_counts[key] / payments
        if tx < 0.005:
            continue
        if paid:
            total_tx += tx
            total_st += st
            total_pings += pg
            total_anew += anew
        print(f"| {db.removeprefix('billing_')} | {step} | {tx:.2f} | {pg:.2f} | {st:.2f} | {anew:.2f} |")
    print(f"| **the payment** | its steps above (bench, relay and setup rows excluded) | **{total_tx:.2f}** | "
          f"{total_pings:.2f} | **{total_st:.2f}** | **{total_anew:.2f}** |")
    if "--shapes" in sys.argv:
        for key in rows:
            print(f"\n{key[0]} / {key[1]}:")
            for s, anew in shapes[key]:
                print("   ", "(anew)" if anew else "", s[:160])
    with open(path + ".json", "w") as out:
        json.dump({"payment_transactions": total_tx, "payment_statements": total_st, "pool_checks": total_pings,
                   "prepared_anew": total_anew}, out)


if __name__ == "__main__":
    main()
