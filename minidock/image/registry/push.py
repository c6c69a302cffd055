"""`push`: blobs the registry lacks, uploaded (chunked, verified by digest), then the manifest.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

from minidock.errors import NotFound
from minidock.image import reference
from minidock.image.registry.client import INDEX_TYPES, Client, RegistryError
from minidock.image.registry.pull import Progress, _workers
from minidock.image.store import (
    MT_OCI_MANIFEST,
    ImageStore,
)


def push(ref: str, *, quiet: bool = False, out=None, insecure: bool = False,
         store: ImageStore | None = None) -> str:
    """Push a tagged image like `docker push`. -> the manifest digest."""
    store = store or ImageStore()
    r = reference.parse(ref)
    img = store.resolve(ref)
    prog = Progress(out, quiet)
    prog.say(f"The push refers to repository [{r.repository}]")
    client = Client(r.domain, insecure)
    scope = f"repository:{r.path}:pull,push"
    data = store.read_blob(img.record["ManifestDigest"])
    doc = json.loads(data)
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        raise RegistryError("pushing an image index is not supported")
    mt = doc.get("mediaType") or MT_OCI_MANIFEST
    sources = [d.split("@")[0] for d in img.record.get("RepoDigests", [])]
    mounts = [s.split("/", 1)[1] for s in sources if s.split("/", 1)[0] == r.domain and s != r.repository]

    def one(desc: dict) -> None:
        digest = desc["digest"]
        key = digest[7:19]
        if client.has_blob(r.path, digest, scope):
            prog.status(key, "Layer already exists")
            return
        prog.status(key, "Preparing")
        path = str(store.blob_path(digest))
        if not os.path.exists(path):
            raise NotFound(f"blob {digest} of {r.familiar()} is not in the store",
                           "Pull or load the image again before pushing it.")
        prog.status(key, "Pushing")
        how = client.upload(r.path, digest, path, os.path.getsize(path), scope,
                            mount_from=mounts[0] if mounts else None)
        if how == "Mounted":
            prog.status(key, f"Mounted from {mounts[0]}")
        else:
            prog.status(key, "Pushed")

    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        list(pool.map(one, list(reversed(doc.get("layers") or []))))
    one(doc["config"])
    tag = r.tag or "latest"
    digest = client.put_manifest(r.path, r.digest or tag, data, mt, scope)
    prog.finish()
    with store.lock():
        path = store._record_path(img.id)
        rec = json.loads(path.read_text())
        rec["RepoDigests"] = sorted(set(rec.get("RepoDigests", [])) | {f"{r.repository}@{digest}"})
        store._write_json(path, rec)
    line = f"{tag}: digest: {digest} size: {len(data)}"
    if quiet:
        if out is not None:
            out.write(str(r) + "\n")
    else:
        prog.say(line)
    return digest


# ---- login ----------------------------------------------------------------------------------------
