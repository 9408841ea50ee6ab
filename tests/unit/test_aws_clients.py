"""functions/core/aws.py makes every client from one session: botocore's endpoint and partition data load once
per process, not once per client (each client after the first of a cold start ~110 ms cheaper here), nor once
per session (a reset's new clients ~200 ms cheaper)."""

from __future__ import annotations

import threading
from collections import Counter

import botocore.loaders
import pytest

from functions.core import aws


@pytest.fixture
def file_reads(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reads: Counter = Counter()
    real = botocore.loaders.JSONFileLoader.load_file

    def load_file(self, file_path):
        reads[file_path.rsplit("/", 1)[-1].split(".")[0]] += 1
        return real(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
    monkeypatch.setattr(aws, "_data_loader", None)  # as in a new process
    aws.reset_clients()
    yield reads
    aws.reset_clients()


def test_botocore_data_loads_once_for_every_client(file_reads):
    clients = [aws.client(service) for service in ("dynamodb", "s3", "sqs")]
    assert len({id(c) for c in clients}) == 3
    assert file_reads["endpoints"] == 1 and file_reads["partitions"] <= 1
    assert aws.client("s3") is clients[1]  # cached per service


def test_reset_makes_a_new_session_without_reading_botocore_data_again(file_reads, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    first = aws.client("dynamodb")
    read = sum(file_reads.values())
    for port in (4567, 4568, 4569):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        aws.reset_clients()
        again = aws.client("dynamodb")
    # A new session: the endpoint (and credentials) of now apply...
    assert again is not first and again.meta.endpoint_url == "http://127.0.0.1:4569"
    # ...from the data read once, and boto3's data folder is searched once, not once per session.
    assert file_reads["endpoints"] == 1 and sum(file_reads.values()) == read
    paths = aws._data_loader.search_paths
    assert len(paths) == len(set(paths))


def test_clients_made_at_once_from_many_threads_are_one_per_service(file_reads):
    made: list = []
    barrier = threading.Barrier(8)

    def make(service: str) -> None:
        barrier.wait()
        made.append((service, aws.client(service)))

    threads = [threading.Thread(target=make, args=(("sqs", "s3")[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 8
    assert all(made_client is aws.client(service) for service, made_client in made)  # exactly one per service
    assert file_reads["endpoints"] == 1
