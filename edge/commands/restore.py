"""``edge restore [--measurement M ...] [--site S ...] --start T --end T --into DB [--into-node NODE]``:
archived points back into an InfluxDB database (``edge.ops.restore``), each site
on its node of the site map, or every point on ``--into-node``.

No ``--measurement``: every measurement the archive holds in the range. Progress
bar (points, values/s) on a terminal; the closing line names what was restored
(each measurement with its points, the sites) and gives points, values and
values/s.
"""

from __future__ import annotations

import argparse
import sys

from edge.commands.options import at_least
from edge.core.moments import moment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measurement", action="append", dest="measurements", metavar="MEASUREMENT",
                        help="measurement to restore (e.g. field6; repeatable; default: every measurement"
                             " archived in the range)")
    parser.add_argument("--site", action="append", default=[], help="only this site (repeatable)")
    parser.add_argument("--start", type=moment, required=True, help="from this day or moment (UTC unless given)")
    parser.add_argument("--end", type=moment, required=True, help="up to this day or moment, exclusive")
    parser.add_argument("--into", required=True, help="InfluxDB database to write into (created if missing)")
    parser.add_argument("--into-live", action="store_true",
                        help="allow --into to be the live database ([influxdb] database)")
    parser.add_argument("--into-node", metavar="NODE",
                        help="write every point to this InfluxDB node ('default' for [influxdb] url, or a name of"
                             " [influxdb.nodes]) instead of each site's node of the site map: what moving a site"
                             " to another node uses (restore it into its new node, then change the map;"
                             " docs/scaling.md)")
    parser.add_argument("--source", choices=("auto", "local", "s3"), default="auto",
                        help="archive to read (default: S3 when [s3] bucket is set, else [archive] directory)")
    parser.add_argument("--batch-lines", type=at_least(1), default=5000,
                        help="lines per /write request (default 5000)")


def run(args: argparse.Namespace) -> int:
    from edge.config.settings import ArchiveSettings
    from edge.ops.restore import restore
    from edge.runtime import logs

    settings = ArchiveSettings.load(getattr(args, "config", None))
    log = logs.configure(settings.log, "restore")
    summary = restore(settings, args.measurements, args.start, args.end, args.into, sites=set(args.site) or None,
                      into_live=args.into_live, source=args.source, batch_lines=args.batch_lines,
                      progress=None, into_node=args.into_node, log=log)
    print(f"restore: {summary.line()}")
    return 0
