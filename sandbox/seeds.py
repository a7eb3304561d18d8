"""Named seeds: databases created at start-up through the normal (validating) document write path."""

from __future__ import annotations

import importlib
from typing import Any

from sandbox.api_documents import Author, WriteFlags, insert_documents
from sandbox.descriptors import Descriptor
from sandbox.schema import DEFAULT_CONTEXT
from sandbox.store import Store

SEEDS = {"demo": "sandbox.demo_seed"}
SEED_AUTHOR = "sandbox-seed"
SEED_USER = "terminusdb://system/data/User/admin"


def load_seed(store: Store, name: str) -> None:
    """Create the seed's database (schema commit, then instance commit) unless it already exists."""
    if name not in SEEDS:
        raise ValueError(f"unknown seed {name!r}; available seeds: {sorted(SEEDS)}")
    module: Any = importlib.import_module(SEEDS[name])
    org, db_name = module.DEMO_TEAM, module.DEMO_DATABASE
    if store.get(org, db_name) is not None:
        return
    store.organizations.add(org)
    db = store.create(
        org,
        db_name,
        label=db_name,
        comment=f"{name} seed",
        context=dict(DEFAULT_CONTEXT),
        public=False,
        schemaless=False,
    )
    if db is None:
        return
    descriptor = Descriptor("branch", org, db_name, "local", "main")
    insert_documents(
        None,
        db,
        descriptor,
        module.demo_schema(),
        WriteFlags(graph_type="schema"),
        Author(SEED_AUTHOR, f"{name} seed: schema", SEED_USER),
    )
    insert_documents(
        None,
        db,
        descriptor,
        module.demo_documents(),
        WriteFlags(graph_type="instance"),
        Author(SEED_AUTHOR, f"{name} seed: documents", SEED_USER),
    )
    store.save()
