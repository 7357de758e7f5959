#!/usr/bin/env python3
"""CDK app: the AWS side of the microgrid archive, one stack per concern.

- storage:   the archive bucket (+ its access-log bucket)
- catalog:   Glue database + scheduled crawler over ``archive/``
- analytics: Athena workgroup (+ a managed policy for running queries)
- ingest:    the upload Lambda (S3 ObjectCreated -> Glue partition) + the edge
             archiver's managed policy

Settings come from ``cdk.json`` (context); cdk-nag's AwsSolutions checks run on
every synth, and ``cdk synth``/``cdk deploy`` refuse to go on if one fails.
``python app.py`` works without the CDK CLI and without AWS credentials (it writes
the cloud assembly to ``$CDK_OUTDIR`` or ``cdk.out``).
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.analytics import AnalyticsStack
from stacks.catalog import CatalogStack
from stacks.config import AppConfig, cdk_json_context
from stacks.ingest import IngestStack
from stacks.storage import StorageStack


def build_app(context: dict | None = None, outdir: str | None = None) -> tuple[cdk.App, dict[str, cdk.Stack]]:
    # Context from the CLI (cdk.json, -c) wins over these defaults, read from the
    # same cdk.json for runs without the CLI.
    app = cdk.App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    config = AppConfig.from_context(app)
    env = cdk.Environment(
        account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
    )
    prefix = config.stack_prefix
    storage = StorageStack(app, f"{prefix}Storage", config=config, env=env, description="Microgrid archive: S3 bucket")
    catalog = CatalogStack(
        app, f"{prefix}Catalog", config=config, storage=storage, env=env, description="Microgrid archive: Glue database and crawler"
    )
    analytics = AnalyticsStack(
        app, f"{prefix}Analytics", config=config, storage=storage, env=env, description="Microgrid archive: Athena workgroup"
    )
    ingest = IngestStack(
        app, f"{prefix}Ingest", config=config, storage=storage, env=env,
        description="Microgrid archive: upload Lambda and edge archiver policy",
    )
    for stack in (storage, catalog, analytics, ingest):
        cdk.Tags.of(stack).add("project", config.project_name)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, {"storage": storage, "catalog": catalog, "analytics": analytics, "ingest": ingest}


if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
