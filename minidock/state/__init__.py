"""Records under the state root that every layer above the runtime may read and write.

    containers.py   container records (config.json, state.json), IDs, name resolution, locks
    names.py        the name index (containers/names.json)
    journal.py      the per-container journal of host resources, undone backwards

These are data, not behaviour: starting, stopping and supervising containers is the engine's;
the network and volume packages read records (who uses this volume? which peers share this
network?) and journal what they create, without importing the engine.
"""
