"""`pull`: manifest (by tag or digest, platform selected), config and layers fetched in parallel and
verified into the store under a lease; progress like Docker's; `pull_for_run`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from minidock.errors import NotFound
from minidock.image import reference
from minidock.image.registry.client import INDEX_TYPES, Client, RegistryError
from minidock.image.registry.platform import check_manifest, parse_platform, select_platform
from minidock.image.store import (
    BadBlob,
    ImageStore,
    check_descriptors,
)


class Progress:
    """Docker's pull/push display: one line per layer. On a terminal, lines are redrawn in place
    (ANSI cursor moves, at most 10 times a second); otherwise each status change is one line;
    quiet prints nothing."""

    def __init__(self, out=None, quiet: bool = False):
        self.out = out or sys.stdout
        self.quiet = quiet
        self.tty = not quiet and hasattr(self.out, "isatty") and self.out.isatty()
        self.order: list[str] = []
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def status(self, key: str, text: str, cur: int | None = None, total: int | None = None) -> None:
        if self.quiet:
            return
        with self.lock:
            if key not in self.lines:
                self.order.append(key)
            line = f"{key}: {text}"
            if cur is not None and total:
                width = 50
                done = min(width, int(width * cur / total))
                bar = "=" * done + (">" if done < width else "") + " " * max(0, width - done - 1)
                from minidock.util import human_size

                line += f" [{bar}]  {human_size(cur)}/{human_size(total)}"
            changed = self.lines.get(key, "").split(" [")[0] != line.split(" [")[0]
            self.lines[key] = line
            if self.tty:
                now = time.monotonic()
                if changed or now - self.last > 0.1:
                    self.last = now
                    self._redraw()
            elif changed:
                self.out.write(line + "\n")
                self.out.flush()

    def _redraw(self) -> None:
        buf = f"\x1b[{self.drawn}A" if self.drawn else ""
        for k in self.order:
            buf += "\x1b[2K" + self.lines[k] + "\n"
        self.drawn = len(self.order)
        self.out.write(buf)
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self.order:
            with self.lock:
                self._redraw()
        self.order, self.lines, self.drawn = [], {}, 0


class _Counting:
    def __init__(self, raw, cb):
        self.raw, self.cb, self.n = raw, cb, 0

    def read(self, n=-1):
        data = self.raw.read(n)
        self.n += len(data)
        self.cb(self.n)
        return data


# ---- pull ---------------------------------------------------------------------------------------
def _workers() -> int:
    try:
        return max(1, int(os.environ.get("MINIDOCK_MAX_CONCURRENT_DOWNLOADS", "3")))
    except ValueError:
        return 3


def pull(ref: str, *, platform: str | None = None, quiet: bool = False, out=None, insecure: bool = False,
         store: ImageStore | None = None):
    """Pull an image like `docker pull`. -> the Image in the store."""
    r = reference.parse(ref)
    store = store or ImageStore()
    prog = Progress(out, quiet)
    if not r.tag and not r.digest:
        r = r.with_tag("latest")
    if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        prog.say("Using default tag: latest")
    client = Client(r.domain, insecure)
    what = r.familiar()
    data, mt, digest = client.manifest(r.path, r.digest or r.tag)
    prog.say(f"{r.digest or r.tag}: Pulling from {r.path}")
    manifest_digest = digest  # the repo digest: the index's when there is one, as docker shows it
    index_used = mt in INDEX_TYPES
    if index_used:
        child = select_platform(json.loads(data), platform, what)
        data, mt, _ = client.manifest(r.path, child["digest"])
        if mt in INDEX_TYPES:
            raise RegistryError(f"{what}: nested image indexes are not supported")
    doc = json.loads(data)
    check_manifest(doc, what)
    cdesc = doc["config"]
    with store.lease() as lease:
        if store.has_blob(cdesc["digest"]):
            lease.hold(cdesc["digest"])
            config = store.read_blob(cdesc["digest"])
        else:
            resp = client.blob(r.path, cdesc["digest"])
            lease.put_blob(resp, cdesc["digest"], cdesc.get("size"))
            config = store.read_blob(cdesc["digest"])
        cfg = check_descriptors(json.loads(config), f"the config of {what}")
        if platform and not index_used:
            want = parse_platform(platform)
            if (cfg.get("os"), cfg.get("architecture")) != want[:2]:
                raise NotFound(f"image with reference {what} was found but does not match the specified "
                               f"platform: wanted {platform}, actual: {cfg.get('os')}/{cfg.get('architecture')}")
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        layers = doc.get("layers") or []
        if len(diff_ids) != len(layers):
            raise BadBlob(f"{what}: the manifest lists {len(layers)} layers but the config has "
                          f"{len(diff_ids)} diff_ids", "The image is malformed; nothing was stored.")
        old = _existing(store, cdesc["digest"])
        descs = []
        jobs = []
        for desc, diff in zip(layers, diff_ids):
            key = desc["digest"][7:19]
            descs.append({"digest": desc["digest"], "diff_id": diff, "mediaType": desc["mediaType"],
                          "size": desc.get("size", 0)})
            lease.hold(desc["digest"])
            lease.hold(diff)
            if store.has_blob(desc["digest"]) and store.has_layer(diff):
                prog.status(key, "Already exists")
            else:
                prog.status(key, "Pulling fs layer")
                jobs.append((key, desc, diff))
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            futs = [pool.submit(_fetch_layer, client, r.path, lease, prog, key, desc, diff)
                    for key, desc, diff in jobs]
            errors = []
            for f in futs:
                try:
                    f.result()
                except BaseException as e:  # wait for every worker before rolling back
                    errors.append(e)
            if errors:
                raise errors[0]
        lease.unpacked_sizes(descs)
        img = store.add_image(config, descs, manifest=data, tags=[str(r)] if r.tag else [],
                              repo_digest=f"{r.repository}@{manifest_digest}")
    prog.finish()
    prog.say(f"Digest: {manifest_digest}")
    if old and old.get("ManifestDigest"):
        prog.say(f"Status: Image is up to date for {what}")
    else:
        prog.say(f"Status: Downloaded newer image for {what}")
    if not quiet:
        prog.say(str(r))
    elif out is not None:
        out.write(str(r) + "\n")
    return img


def _existing(store: ImageStore, image_id: str) -> dict | None:
    try:
        return json.loads(store._record_path(image_id).read_text())
    except (OSError, ValueError):
        return None


def _fetch_layer(client: Client, repo: str, lease, prog: Progress, key: str, desc: dict, diff: str) -> None:
    store = lease.store
    size = desc.get("size") or 0
    if not store.has_blob(desc["digest"]):
        resp = client.blob(repo, desc["digest"])
        total = size or int(resp.getheader("Content-Length") or 0)
        prog.status(key, "Downloading", 0, total)
        lease.put_blob(_Counting(resp, lambda n: prog.status(key, "Downloading", n, total)),
                       desc["digest"], size or None)
        prog.status(key, "Download complete")
    prog.status(key, "Extracting")
    lease.unpack_layer(desc["digest"], diff)
    prog.status(key, "Pull complete")


def pull_for_run(ref: str) -> None:
    """`run`/`create` of a missing image: pull it with progress on stderr, as Docker does."""
    pull(ref, out=sys.stderr)


# ---- push ---------------------------------------------------------------------------------------
