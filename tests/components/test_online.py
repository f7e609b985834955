"""The scoring path's Redis encoding equals Feast's own: keys and values, byte for byte."""

from __future__ import annotations

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.value_type import ValueType

from components.serving.online_reader import _python_value, key_encoder


@pytest.mark.parametrize("user", [0, 1, 127, 128, 2**31, 2**62, -1, -(2**63)])
def test_int64_entity_keys_match_feast(user: int) -> None:
    encode = key_encoder(["user_id"], {"user_id": ValueType.INT64}, 3)
    expected = serialize_entity_key(
        EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=user)]), entity_key_serialization_version=3
    )
    assert encode({"user_id": user}) == expected


@pytest.mark.parametrize("merchant", ["", "m-42", "çafé"])
def test_string_entity_keys_match_feast(merchant: str) -> None:
    encode = key_encoder(["merchant"], {"merchant": ValueType.STRING}, 3)
    key = EntityKey(join_keys=["merchant"], entity_values=[Value(string_val=merchant)])
    expected = serialize_entity_key(key, entity_key_serialization_version=3)
    assert encode({"merchant": merchant}) == expected


def test_compound_keys_go_through_feasts_serializer() -> None:
    types = {"user_id": ValueType.INT64, "merchant": ValueType.STRING}
    encode = key_encoder(["user_id", "merchant"], types, 3)
    expected = serialize_entity_key(
        EntityKey(join_keys=["user_id", "merchant"], entity_values=[Value(int64_val=7), Value(string_val="m")]),
        entity_key_serialization_version=3,
    )
    assert encode({"user_id": 7, "merchant": "m"}) == expected


@pytest.mark.parametrize(
    "value",
    [
        Value(int64_val=0),
        Value(int64_val=300),
        Value(int64_val=-5),
        Value(int64_val=2**63 - 1),
        Value(double_val=0.0),
        Value(double_val=-1.25e-9),
        Value(float_val=1.5),
        Value(int32_val=-3),
        Value(string_val="x"),
        Value(bool_val=False),
    ],
)
def test_values_decode_as_the_proto_says(value: Value) -> None:
    kind = value.WhichOneof("val")
    assert _python_value(value.SerializeToString()) == getattr(value, kind)
