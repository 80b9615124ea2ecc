#!/usr/bin/env python3
"""Recomputes the hashes of a klarna-gateway audit export with nothing but Python's standard library.

    python3 verify-audit-export.py [--filtered] EXPORT.jsonl

An export (`audit export --format jsonl`, or an archive written by `audit prune`) holds one record per line: `"v"`
(the canonical version its hash covers), its fields in canonical order, `prev_hash` and `hash`. For each record
this recomputes the encoding `"v"` names from the line's values (docs/audit.md), hashes it after the previous
hash and compares. Then each node's records, in sequence order, must follow each other without a gap, each
chaining from the one before (with --filtered, an export made with filters, only that none is given twice). An
archive's closing checkpoint line must name its node's last record.

What this proves: every record matches its hash and the records are linked. What it cannot prove: that nothing
was cut from either end or recomputed wholesale. Only the signed checkpoints prove that: compare the first
`prev_hash` and the last `hash` printed here with the shipped checkpoint file, or run `klarna-gateway audit
verify-archive` with the public key.

Exits 0 when every line verifies, 1 at the first that does not, naming it.
"""
import hashlib
import json
import string
import struct
import sys

# The chained fields after `seq`, in canonical order (docs/audit.md, the table of columns).
FIELDS = [
    "node_id", "time_us", "phase", "request_id",
    "caller_id", "auth_method", "caller_cert_fingerprint", "client_address",
    "merchant_id", "partner_id", "account", "environment",
    "operation_id", "operation_family", "operation_template",
    "method", "path", "release", "idempotency_key", "correlation_id",
    "request_sha256", "request_bytes",
    "status", "gateway_error_code", "klarna_error_code", "klarna_error_id",
    "response_sha256", "response_bytes",
    "upstream_attempts", "upstream_latency_us",
    "credential_id", "credential_version", "upstream_cert_fingerprint",
]
INTEGERS = {"time_us", "request_bytes", "status", "response_bytes", "upstream_attempts", "upstream_latency_us",
            "credential_version"}
REQUIRED = {"node_id", "time_us", "phase", "request_id", "method", "path", "upstream_attempts"}
KEYS = ["v", "seq"] + FIELDS + ["prev_hash", "hash"]


class Refused(Exception):
    pass


def is_integer(value):
    return type(value) is int  # not bool, not float


def check_types(record):
    if not is_integer(record["v"]) or not is_integer(record["seq"]):
        raise Refused("`v` and `seq` must be integers")
    for name in FIELDS:
        value = record[name]
        if value is None:
            if name in REQUIRED:
                raise Refused("`%s` may not be null" % name)
        elif name in INTEGERS:
            if not is_integer(value):
                raise Refused("`%s` must be an integer or null" % name)
        elif type(value) is not str:
            raise Refused("`%s` must be a string or null" % name)
    for name in ("prev_hash", "hash"):
        if type(record[name]) is not str:
            raise Refused("`%s` must be a string" % name)


def quote(text):
    """A JSON string as `v1` writes it: only `"`, `\\`, and control characters escaped."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def v1(record):
    """JSON text: `"v":1`, `seq`, then every field in order, `null` when absent."""
    def value(v):
        if v is None:
            return "null"
        if is_integer(v):
            return str(v)
        return quote(v)
    parts = ['"v":1', '"seq":%d' % record["seq"]]
    parts += ['"%s":%s' % (name, value(record[name])) for name in FIELDS]
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def v2(record):
    """Packed bytes: 0x02, `seq` (8 bytes, little-endian), then per field a tag and its value."""
    out = bytearray(b"\x02") + struct.pack("<q", record["seq"])
    for name in FIELDS:
        v = record[name]
        if v is None:
            out += b"\x00"
        elif name in INTEGERS:
            out += b"\x02" + struct.pack("<q", v)
        else:
            data = v.encode("utf-8")
            out += b"\x01" + struct.pack("<I", len(data)) + data
    return bytes(out)


ENCODINGS = {1: v1, 2: v2}


def previous_bytes(prev_hash):
    """The previous hash's 32 raw bytes, or its text when it is not 64 hex digits."""
    if len(prev_hash) == 64 and all(c in string.hexdigits for c in prev_hash):
        return bytes.fromhex(prev_hash)
    return prev_hash.encode("utf-8")


def pairs(items):
    """Keeps the keys' order and refuses a key given twice (parsers disagree on which one wins)."""
    keys = [key for key, _ in items]
    if len(set(keys)) != len(keys):
        raise Refused("a key is given twice")
    return dict(items)


def verify(path, filtered):
    links = {}  # node -> [(seq, prev_hash, hash)]: a PostgreSQL trail's export merges its nodes' chains by time
    closings = []  # (line number, checkpoint)
    checked = 0
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            record = None
            try:
                try:
                    record = json.loads(line, object_pairs_hook=pairs)
                except ValueError as error:
                    raise Refused("not JSON (%s)" % error)
                if not isinstance(record, dict):
                    raise Refused("not a JSON object")
                if list(record) == ["checkpoint"]:
                    closings.append((number, record["checkpoint"]))
                    continue
                if list(record) != KEYS:
                    raise Refused("the keys are not a record's, in canonical order")
                check_types(record)
                encode = ENCODINGS.get(record["v"])
                if encode is None:
                    raise Refused("unknown canonical version %r" % record["v"])
                if hashlib.sha256(previous_bytes(record["prev_hash"]) + encode(record)).hexdigest() != record["hash"]:
                    raise Refused("fields do not match the record's hash")
                links.setdefault(record["node_id"], []).append((record["seq"], record["prev_hash"], record["hash"], number))
                checked += 1
            except Refused as refusal:
                seq = record.get("seq") if isinstance(record, dict) else None
                print("line %d%s: %s" % (number, "" if seq is None else " (seq %s)" % seq, refusal))
                return 1
    # Each node's chain in sequence order: no record twice, none missing, each chaining from the one before.
    for name in sorted(links):
        chain = sorted(links[name])
        for before, record in zip(chain, chain[1:]):
            seq, prev_hash, _, number = record
            if seq == before[0]:
                print("line %d (seq %d): node %s's seq %d is given twice" % (number, seq, name, seq))
                return 1
            if not filtered and seq != before[0] + 1:
                print("line %d (seq %d): node %s's records missing after seq %d" % (number, seq, name, before[0]))
                return 1
            if not filtered and prev_hash != before[2]:
                print("line %d (seq %d): does not chain from node %s's seq %d" % (number, seq, name, before[0]))
                return 1
        links[name] = chain
    for number, closing in closings:
        chain = links.get(closing.get("node_id"))
        if not chain or chain[-1][0] != closing.get("seq") or chain[-1][2] != closing.get("hash"):
            print("line %d: the closing checkpoint does not name its node's last record" % number)
            return 1
    for name in sorted(links):
        first, last = links[name][0], links[name][-1]
        print("node %s: seq %d (prev_hash %s) to seq %d (hash %s)" % (name, first[0], first[1], last[0], last[2]))
    print("%d records verified" % checked)
    return 0


if __name__ == "__main__":
    arguments = sys.argv[1:]
    filtered = "--filtered" in arguments
    arguments = [a for a in arguments if a != "--filtered"]
    if len(arguments) != 1:
        sys.exit(__doc__)
    sys.exit(verify(arguments[0], filtered))
