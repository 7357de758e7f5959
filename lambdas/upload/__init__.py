"""The upload Lambda: registers each new archive object's partition in the Glue catalog.

Deployed as an asset (``lambdas/`` directory, handler ``upload.handler.handler``).
Only the standard library and boto3 are used: the Lambda runtime has no pyarrow.
"""
