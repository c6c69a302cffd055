"""A client for the OCI Distribution spec: pull, push and login, with http.client only.

    client.py    transport, auth, the API calls (manifest, blob, upload), login, media types
    platform.py  platform parsing and selection in an index, manifest checks
    pull.py      pull, pull_for_run (parallel verified downloads into the store, progress)
    push.py      push

Auth, as Docker does it: every request goes out anonymous (or with the token we already hold for
its scope); a ``401`` carries a ``WWW-Authenticate`` challenge:

* ``Basic realm=...``  -> retry with the stored username/password;
* ``Bearer realm=...,service=...,scope=...`` -> GET the realm with service and scope (with basic
  credentials if we have some) for a token, then retry with ``Authorization: Bearer <token>``.
  Tokens are cached per scope for the life of the client.

Transport: https, except for localhost/127.0.0.0/8/::1 (plain http, as Docker treats loopback
as an insecure registry) and for registries named in ``--insecure`` or
``MINIDOCK_INSECURE_REGISTRIES`` (comma-separated; https without verification, then http).

Integrity: every blob is stored through :meth:`ImageStore.put_blob` with its expected digest, so
a blob that does not hash to its descriptor is never stored; a manifest pulled by digest must
hash to it, and one pulled by tag must hash to the ``Docker-Content-Digest`` the registry sent.
A pull holds a store lease: gc leaves its blobs alone, and a failed pull removes what it added.
"""

from minidock.image.registry.client import (  # noqa: F401 - the package's interface
    ACCEPT,
    CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_DOCKER_LIST,
    MT_OCI_INDEX,
    MT_SCHEMA1,
    USER_AGENT,
    Client,
    RegistryError,
    Unauthorized,
    _parse_challenge,
    _server_domain,
    insecure_registries,
    is_loopback,
    login,
)
from minidock.image.registry.platform import (  # noqa: F401 - the package's interface
    check_manifest,
    parse_platform,
    select_platform,
)
from minidock.image.registry.pull import (  # noqa: F401 - the package's interface
    Progress,
    pull,
    pull_for_run,
)
from minidock.image.registry.push import (  # noqa: F401 - the package's interface
    push,
)
