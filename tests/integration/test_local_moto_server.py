"""The local moto server's port is held by its parent for the server's whole life: no other program can take
it between the choice and the bind, or while a killed server is started again."""

import errno
import json
import signal
import socket

import httpx
import pytest

from infra.local.moto_server import MotoServer


def _bind_fails(port: int) -> bool:
    with socket.socket() as other:
        # SO_REUSEADDR: only a listening socket blocks the bind, not the TIME_WAIT of a closed connection.
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            other.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def test_the_port_is_reserved_before_start_and_across_a_restart():
    server = MotoServer()
    try:
        assert _bind_fails(server.port), "the port is free for anyone until the server process binds it"
        server.start()
        first = server.process
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert _bind_fails(server.port), "a killed server gave its port away"
        endpoint = server.start()
        assert server.process.pid != first.pid
        assert httpx.get(f"{endpoint}/moto-api/", timeout=5).status_code == 200
    finally:
        server.close()
    assert not _bind_fails(server.port), "close() keeps the port"


def test_the_links_configuration_survives_a_crash(tmp_path):
    """The public origin (SSM) and the media-link key (Secrets Manager) are state like the tables: a moto server
    killed and started again from its saved state still has them, or every link-rendering request would fail."""
    import boto3

    from infra.local import resources
    from infra.local.template import load

    server = MotoServer(state_dir=tmp_path / "moto")
    try:
        endpoint = server.start()
        template = load()
        physical = resources.create_all(template, endpoint, public_base_url="http://127.0.0.1:8000")
        secret_arn = physical["MediaSigningSecret"].ref

        def client(service):
            return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                                aws_access_key_id="local", aws_secret_access_key="local")

        key = client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        endpoint = server.start()
        parameter = client("ssm").get_parameter(Name="/darkroom-local/public-base-url")["Parameter"]["Value"]
        assert parameter == "http://127.0.0.1:8000"
        assert client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"] == key
        # Made once: a second stack start on the same state keeps the key, so links handed out still work.
        assert resources.create_all(template, endpoint)["MediaSigningSecret"].ref == secret_arn
        assert client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"] == key
    finally:
        server.close()


def test_an_explicit_port_that_is_taken_fails_at_once():
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(OSError) as raised:
        MotoServer(port=taken.getsockname()[1])
    assert raised.value.errno == errno.EADDRINUSE


# ---- transactions: only the named items are backed up, and a canceled one changes nothing


def _client(endpoint: str):
    import boto3

    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


def _table(ddb, name: str, *, with_range: bool) -> None:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}] + ([{"AttributeName": "sk", "KeyType": "RANGE"}]
                                                          if with_range else [])
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=keys,
                     AttributeDefinitions=[{"AttributeName": k["AttributeName"], "AttributeType": "S"} for k in keys])


def _scan(ddb, name: str) -> list[dict]:
    return sorted(ddb.scan(TableName=name)["Items"], key=lambda item: json.dumps(item, sort_keys=True))


@pytest.mark.parametrize("with_range", [False, True], ids=["hash key", "hash and range key"])
def test_a_canceled_transaction_leaves_every_item_as_it_was(with_range):
    from botocore.exceptions import ClientError

    server = MotoServer()
    try:
        ddb = _client(server.start())
        _table(ddb, "t", with_range=with_range)
        _table(ddb, "balances", with_range=False)

        def key(pk: str) -> dict:
            return {"pk": {"S": pk}, **({"sk": {"S": "s"}} if with_range else {})}

        for i in range(50):  # other items, which the transaction never names
            ddb.put_item(TableName="t", Item={**key(f"other-{i}"), "n": {"N": str(i)}})
        ddb.put_item(TableName="t", Item={**key("existing"), "n": {"N": "1"}})
        ddb.put_item(TableName="balances", Item={"pk": {"S": "w"}, "credits": {"N": "10"}})
        before = {name: _scan(ddb, name) for name in ("t", "balances")}

        with pytest.raises(ClientError) as canceled:
            ddb.transact_write_items(TransactItems=[
                {"Put": {"TableName": "t", "Item": {**key("new"), "n": {"N": "2"}}}},
                {"Update": {"TableName": "t", "Key": key("existing"), "UpdateExpression": "SET n = :n",
                            "ExpressionAttributeValues": {":n": {"N": "99"}}}},
                {"Delete": {"TableName": "t", "Key": key("other-3")}},
                {"Update": {"TableName": "balances", "Key": {"pk": {"S": "w"}},
                            "UpdateExpression": "SET credits = credits - :c", "ConditionExpression": "credits >= :c",
                            "ExpressionAttributeValues": {":c": {"N": "11"}}}},  # overspends: cancels it all
            ])
        assert canceled.value.response["Error"]["Code"] == "TransactionCanceledException"
        assert {name: _scan(ddb, name) for name in ("t", "balances")} == before

        ddb.transact_write_items(TransactItems=[  # the same, affordable: every write lands
            {"Put": {"TableName": "t", "Item": {**key("new"), "n": {"N": "2"}}}},
            {"Update": {"TableName": "balances", "Key": {"pk": {"S": "w"}},
                        "UpdateExpression": "SET credits = credits - :c", "ConditionExpression": "credits >= :c",
                        "ExpressionAttributeValues": {":c": {"N": "10"}}}},
        ])
        assert ddb.get_item(TableName="t", Key=key("new"))["Item"]["n"] == {"N": "2"}
        assert ddb.get_item(TableName="balances", Key={"pk": {"S": "w"}})["Item"]["credits"] == {"N": "0"}
        assert len(_scan(ddb, "t")) == 52
    finally:
        server.close()


def test_the_moto_server_listens_on_loopback_whatever_the_apis_host(tmp_path):
    """With `darkroom dev --host 0.0.0.0` the moto server bound there too: anyone on the network could read
    every workspace's webhook secrets and every output through it (it checks no credential)."""
    from infra.local.stack import LocalStack

    stack = LocalStack(host="0.0.0.0", data_dir=tmp_path)  # constructed, not started: nothing is served
    try:
        assert stack.moto._socket.getsockname()[0] == "127.0.0.1"
        assert stack.moto.endpoint.startswith("http://127.0.0.1:")
    finally:
        stack.moto.close()
