"""The local moto server serializes DynamoDB AttributeValues directly (infra/local/moto_server.py): its
responses must be exactly what moto's stock serializer writes, for every kind of value."""

from __future__ import annotations

import base64
import json
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model

from infra.local import moto_server

STOCK = BaseJSONSerializer._serialize_type_structure
moto_server._attribute_values_serialized_directly()
FAST = BaseJSONSerializer._serialize_type_structure

SERVICE = get_service_model("dynamodb")  # moto's own copy of the model, as its responses use

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
strings = st.text(max_size=12)
numbers = st.one_of(st.integers(-10**12, 10**12), st.decimals(allow_nan=False, allow_infinity=False, places=4)).map(str)
blobs = st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode())
scalars = st.one_of(
    strings.map(lambda v: {"S": v}), numbers.map(lambda v: {"N": v}), blobs.map(lambda v: {"B": v}),
    st.booleans().map(lambda v: {"BOOL": v}), st.just({"NULL": True}),
    st.lists(strings, min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, max_size=3, unique=True).map(lambda v: {"NS": v}),
    st.lists(blobs, min_size=1, max_size=3, unique=True).map(lambda v: {"BS": v}),
)
attribute_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda v: {"L": v}),
    st.dictionaries(names, inner, max_size=3).map(lambda v: {"M": v}),
), max_leaves=12)
items = st.dictionaries(names, attribute_values, min_size=1, max_size=6)


def serialize(operation: str, result: dict, method) -> dict:
    serializer_class = get_serializer_class("dynamodb", "json")
    with mock.patch.object(BaseJSONSerializer, "_serialize_type_structure", method):
        serializer = serializer_class(operation_model=SERVICE.operation_model(operation),
                                      value_picker=XFormedAttributePicker())
        return json.loads(serializer.serialize(result)["body"])


def test_the_patch_is_in_place():
    assert FAST is not STOCK


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=items)
def test_get_item_bodies_are_the_stock_serializers(item):
    result = {"Item": item}
    assert serialize("GetItem", result, FAST) == serialize("GetItem", result, STOCK)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(found=st.lists(items, max_size=3), last=st.none() | items)
def test_query_and_batch_bodies_are_the_stock_serializers(found, last):
    query = {"Items": found, "Count": len(found), "ScannedCount": len(found)}
    if last is not None:
        query["LastEvaluatedKey"] = last
    assert serialize("Query", query, FAST) == serialize("Query", query, STOCK)
    batch = {"Responses": {"jobs": found}, "UnprocessedKeys": {}}
    assert serialize("BatchGetItem", batch, FAST) == serialize("BatchGetItem", batch, STOCK)
    update = {"Attributes": found[0] if found else {}}
    assert serialize("UpdateItem", update, FAST) == serialize("UpdateItem", update, STOCK)


def test_non_attribute_structures_take_the_stock_path():
    described = {"Table": {"TableName": "jobs", "ItemCount": 3, "KeySchema": [
        {"AttributeName": "id", "KeyType": "HASH"}], "TableStatus": "ACTIVE"}}
    assert serialize("DescribeTable", described, FAST) == serialize("DescribeTable", described, STOCK)
