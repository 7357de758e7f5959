"""The upload Lambda: registers each archive day in the Glue catalog from the
``_manifest.json`` the archiver writes beside the day's Parquet parts.

Deployed as an asset (``lambdas/`` directory, handler ``upload.handler.handler``).
Only the standard library and boto3 are used, and no binary input is parsed: the
columns and their types come from the manifest.
"""
