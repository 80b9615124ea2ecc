#!/usr/bin/env python3
"""Re-verifies a klarna-gateway audit export with nothing but Python's standard library.

    python3 verify-audit-export.py EXPORT.jsonl

An export (`audit export --format jsonl`, an archive from `audit prune`, or the admin API's records) holds one
record per line: `"v"` (the canonical version its hash covers), its fields, `prev_hash` and `hash`. For each
record this recomputes the canonical encoding named by `"v"` from the line's values (docs/audit.md), hashes it
after the previous hash, and compares; consecutive records of a node must chain (a PostgreSQL trail's export
merges several nodes' chains by time). Lines that are not records (an archive's
checkpoint lines) are skipped: checking their signatures needs the public key, which `audit verify-archive` does.

Exits 0 when every record verifies, 1 at the first that does not, naming it.
"""
import hashlib
import json
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
        if isinstance(v, int):
            return str(v)
        return quote(v)
    parts = ['"v":1', '"seq":%d' % record["seq"]]
    parts += ['"%s":%s' % (name, value(record.get(name))) for name in FIELDS]
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def v2(record):
    """Packed bytes: 0x02, `seq` (8 bytes, little-endian), then per field a tag and its value."""
    out = bytearray(b"\x02") + struct.pack("<q", record["seq"])
    for name in FIELDS:
        v = record.get(name)
        if v is None:
            out += b"\x00"
        elif isinstance(v, int):
            out += b"\x02" + struct.pack("<q", v)
        else:
            data = v.encode("utf-8")
            out += b"\x01" + struct.pack("<I", len(data)) + data
    return bytes(out)


def previous_bytes(prev_hash):
    """The previous hash's 32 raw bytes, or its text when it is not 64 hex digits."""
    if len(prev_hash) == 64:
        try:
            return bytes.fromhex(prev_hash)
        except ValueError:
            pass
    return prev_hash.encode("utf-8")


def main(path):
    encodings = {1: v1, 2: v2}
    previous = {}  # by node
    checked = 0
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            record = json.loads(line)
            if "hash" not in record or "seq" not in record:
                continue
            encode = encodings.get(record.get("v"))
            if encode is None:
                print("line %d (seq %s): unknown canonical version %r" % (number, record["seq"], record.get("v")))
                return 1
            digest = hashlib.sha256(previous_bytes(record["prev_hash"]) + encode(record)).hexdigest()
            if digest != record["hash"]:
                print("line %d (seq %d): fields do not match the record's hash" % (number, record["seq"]))
                return 1
            before = previous.get(record["node_id"])
            if before is not None and record["seq"] == before["seq"] + 1 and record["prev_hash"] != before["hash"]:
                print("line %d (seq %d): does not chain from seq %d" % (number, record["seq"], before["seq"]))
                return 1
            previous[record["node_id"]] = record
            checked += 1
    print("%d records verified" % checked)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
