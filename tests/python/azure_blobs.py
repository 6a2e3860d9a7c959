"""Azurite helpers for tests/it/azurite.rs, through Azure's own Python client.

    azure_blobs.py create ENDPOINT CONTAINER
    azure_blobs.py download ENDPOINT CONTAINER PREFIX DIR

`create` makes a container; `download` writes every blob under PREFIX/ into DIR, at its name relative
to the prefix. ENDPOINT is Azurite's blob service, http://127.0.0.1:PORT; the account is Azurite's
built-in one.
"""

import os
import sys

from azure.storage.blob import BlobServiceClient

# Azurite's well-known development account and key (public, in Azure's documentation).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def client(endpoint: str) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint={endpoint}/{ACCOUNT};"
    )


def main() -> None:
    command, endpoint, container = sys.argv[1:4]
    service = client(endpoint)
    if command == "create":
        service.create_container(container)
    elif command == "download":
        prefix, out = sys.argv[4].rstrip("/") + "/", sys.argv[5]
        blobs = service.get_container_client(container)
        for blob in blobs.list_blobs(name_starts_with=prefix):
            path = os.path.join(out, blob.name[len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(blobs.download_blob(blob.name).readall())
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
