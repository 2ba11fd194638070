#!/usr/bin/env python3
"""Known-answer vectors for the `tron` feature of lucid-payouts, computed without any Rust code.

Libraries (PyPI): ecdsa (secp256k1, RFC 6979), pycryptodome (Keccak-256), base58 (Base58Check),
protobuf (the official Google runtime; the TRON messages are declared below as descriptors with the
field numbers of tronprotocol/protocol core/Tron.proto and core/contract/smart_contract.proto, so no
protoc and no generated code is involved).

Run: pip install ecdsa pycryptodome base58 protobuf
     python3 tron_vectors.py > tron_vectors.txt
The output is `name = value` lines read by tests/it/vectors.rs.
"""

import hashlib

import base58
import ecdsa
from Crypto.Hash import keccak
from ecdsa.util import sigencode_strings_canonize
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CURVE = ecdsa.SECP256k1
N = CURVE.order


def keccak256(data: bytes) -> bytes:
    h = keccak.new(digest_bits=256)
    h.update(data)
    return h.digest()


def address_bytes(private_key: int) -> bytes:
    sk = ecdsa.SigningKey.from_secret_exponent(private_key, curve=CURVE)
    public = sk.get_verifying_key().to_string()  # 64 bytes X || Y, no 0x04 prefix
    return b"\x41" + keccak256(public)[-20:]


def base58check(payload: bytes) -> str:
    return base58.b58encode_check(payload).decode()


def pad32(data: bytes) -> bytes:
    return b"\x00" * (32 - len(data)) + data


# ---- protobuf descriptors (field numbers from tronprotocol/protocol) ----
F = descriptor_pb2.FieldDescriptorProto
fdp = descriptor_pb2.FileDescriptorProto(name="tron_min.proto", package="protocol", syntax="proto3")


def message(name, fields):
    m = fdp.message_type.add(name=name)
    for field_name, number, ftype, extra in fields:
        f = m.field.add(name=field_name, number=number, type=ftype, label=F.LABEL_OPTIONAL)
        if extra:
            f.type_name = extra[0]
            if len(extra) > 1:
                f.label = extra[1]
    return m


# google.protobuf.Any: string type_url = 1; bytes value = 2;
message("Any", [("type_url", 1, F.TYPE_STRING, None), ("value", 2, F.TYPE_BYTES, None)])
# core/contract/smart_contract.proto TriggerSmartContract
message(
    "TriggerSmartContract",
    [
        ("owner_address", 1, F.TYPE_BYTES, None),
        ("contract_address", 2, F.TYPE_BYTES, None),
        ("call_value", 3, F.TYPE_INT64, None),
        ("data", 4, F.TYPE_BYTES, None),
        ("call_token_value", 5, F.TYPE_INT64, None),
        ("token_id", 6, F.TYPE_INT64, None),
    ],
)
# core/Tron.proto Transaction.Contract (type is an enum; encoded as varint like int32)
message(
    "Contract",
    [
        ("type", 1, F.TYPE_INT32, None),
        ("parameter", 2, F.TYPE_MESSAGE, (".protocol.Any",)),
        ("provider", 3, F.TYPE_BYTES, None),
        ("ContractName", 4, F.TYPE_BYTES, None),
        ("Permission_id", 5, F.TYPE_INT32, None),
    ],
)
# core/Tron.proto Transaction.raw
message(
    "Raw",
    [
        ("ref_block_bytes", 1, F.TYPE_BYTES, None),
        ("ref_block_num", 3, F.TYPE_INT64, None),
        ("ref_block_hash", 4, F.TYPE_BYTES, None),
        ("expiration", 8, F.TYPE_INT64, None),
        ("data", 10, F.TYPE_BYTES, None),
        ("contract", 11, F.TYPE_MESSAGE, (".protocol.Contract", F.LABEL_REPEATED)),
        ("scripts", 12, F.TYPE_BYTES, None),
        ("timestamp", 14, F.TYPE_INT64, None),
        ("fee_limit", 18, F.TYPE_INT64, None),
    ],
)
pool = descriptor_pool.DescriptorPool()
pool.Add(fdp)


def cls(name):
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("protocol." + name))


Any, Trigger, Contract, Raw = cls("Any"), cls("TriggerSmartContract"), cls("Contract"), cls("Raw")


def recover(digest: bytes, r: int, s: int, v: int) -> bytes:
    """Recovers the public key (64 bytes) from a signature and recovery id, by the textbook formula."""
    p = CURVE.curve.p()
    x = r
    alpha = (pow(x, 3, p) + 7) % p
    y = pow(alpha, (p + 1) // 4, p)
    if y % 2 != v:
        y = p - y
    big_r = ecdsa.ellipticcurve.PointJacobi(CURVE.curve, x, y, 1, N)
    e = int.from_bytes(digest, "big")
    r_inv = pow(r, -1, N)
    q = (big_r * s + CURVE.generator * ((-e) % N)) * r_inv
    return q.x().to_bytes(32, "big") + q.y().to_bytes(32, "big")


out = []


def emit(name, value):
    out.append(f"{name} = {value}")


# ---- keys and addresses ----
KEYS = {
    "key_one": 1,
    "key_two": 2,
    "key_sha": int.from_bytes(hashlib.sha256(b"lucid tron vector key").digest(), "big"),
    "key_max": N - 1,
}
for name, secret in KEYS.items():
    addr = address_bytes(secret)
    emit(f"{name}.secret_hex", secret.to_bytes(32, "big").hex())
    emit(f"{name}.address_hex", addr.hex())
    emit(f"{name}.address_base58", base58check(addr))

# ---- well-known USDT contract ----
usdt = base58.b58decode_check("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
assert usdt.hex() == "41a614f803b6fd780986a42c78ec9c7f77e6ded13c", usdt.hex()
emit("usdt.address_base58", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
emit("usdt.address_hex", usdt.hex())

# ---- selectors and event topic ----
emit("selector.transfer", keccak256(b"transfer(address,uint256)")[:4].hex())
emit("selector.balance_of", keccak256(b"balanceOf(address)")[:4].hex())
emit("topic.transfer", keccak256(b"Transfer(address,address,uint256)").hex())

# ---- transfer call data ----
to = address_bytes(KEYS["key_two"])
amount = 12_345_678  # 12.345678 USDT in micro = on-chain units
data = keccak256(b"transfer(address,uint256)")[:4] + pad32(to[1:]) + pad32(amount.to_bytes(8, "big"))
emit("call.to_base58", base58check(to))
emit("call.amount", amount)
emit("call.data_hex", data.hex())
owner_for_balance = address_bytes(KEYS["key_one"])
emit(
    "call.balance_of_hex",
    (keccak256(b"balanceOf(address)")[:4] + pad32(owner_for_balance[1:])).hex(),
)

# ---- a fixed transaction ----
owner = address_bytes(KEYS["key_one"])
ref_block_num = 77_123_456
ref_block_id = ref_block_num.to_bytes(8, "big") + hashlib.sha256(b"lucid reference block").digest()[8:]
timestamp = 1_764_205_200_000
expiration = timestamp + 60_000
fee_limit = 33_695_280
trigger = Trigger(owner_address=owner, contract_address=usdt, call_value=0, data=data)
contract = Contract(
    type=31,
    parameter=Any(
        type_url="type.googleapis.com/protocol.TriggerSmartContract",
        value=trigger.SerializeToString(deterministic=True),
    ),
)
raw = Raw(
    ref_block_bytes=ref_block_num.to_bytes(8, "big")[6:8],
    ref_block_hash=ref_block_id[8:16],
    expiration=expiration,
    contract=[contract],
    timestamp=timestamp,
    fee_limit=fee_limit,
)
raw_bytes = raw.SerializeToString(deterministic=True)
txid = hashlib.sha256(raw_bytes).digest()
sk = ecdsa.SigningKey.from_secret_exponent(KEYS["key_one"], curve=CURVE)
r_bytes, s_bytes = sk.sign_digest_deterministic(
    txid, hashfunc=hashlib.sha256, sigencode=sigencode_strings_canonize
)
r, s = int.from_bytes(r_bytes, "big"), int.from_bytes(s_bytes, "big")
assert s <= N // 2
public = sk.get_verifying_key().to_string()
v = next(v for v in (0, 1) if recover(txid, r, s, v) == public)
emit("tx.owner_secret_hex", KEYS["key_one"].to_bytes(32, "big").hex())
emit("tx.owner_base58", base58check(owner))
emit("tx.contract_base58", base58check(usdt))
emit("tx.to_base58", base58check(to))
emit("tx.amount", amount)
emit("tx.ref_block_num", ref_block_num)
emit("tx.ref_block_id_hex", ref_block_id.hex())
emit("tx.timestamp", timestamp)
emit("tx.expiration", expiration)
emit("tx.fee_limit", fee_limit)
emit("tx.raw_hex", raw_bytes.hex())
emit("tx.txid_hex", txid.hex())
emit("tx.signature_hex", (r_bytes + s_bytes + bytes([v])).hex())

print("# Generated by tron_vectors.py; do not edit by hand.")
print("\n".join(out))
