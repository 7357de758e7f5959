"""``edge replay --from T [--to T] [--site S] [--dry-run]``: parse the raw topic
again from a moment on, into the parsed topic (``edge.ops.replay``)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from edge.core.errors import UsageError
from edge.core.moments import epoch_ms, moment
from edge.ops.replay import DEFAULT_GROUP, ReplayOptions, replay
from edge.ops.replay_plan import Window


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", type=moment, required=True, metavar="T",
                        help="replay raw records from this moment (their Kafka timestamp; UTC unless given)")
    parser.add_argument("--to", dest="end", type=moment, metavar="T",
                        help="up to this moment, exclusive (default: when the replay started)")
    parser.add_argument("--site", action="append", default=[], help="only this site's messages (repeatable)")
    parser.add_argument("--group-id", default=DEFAULT_GROUP,
                        help=f"consumer group of the replay (default {DEFAULT_GROUP}; never the live parser's)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (topics, offsets and messages per partition, the parser settings used)"
                             " and replay nothing")
    parser.add_argument("--progress", choices=("auto", "bar", "log"), default="auto",
                        help="progress bar (default on a terminal) or log lines")
    parser.add_argument("--metrics-textfile", metavar="PATH",
                        help="write the parser counters of this run (edge_parser_*) to PATH as a Prometheus"
                             " textfile (node_exporter's textfile collector)")


def run(args: argparse.Namespace) -> int:
    from edge.config.settings import ParserSettings
    from edge.core.lifecycle import StopSignal
    from edge.runtime import logs

    settings = ParserSettings.load(getattr(args, "config", None))
    end = args.end or datetime.now(UTC)
    if end <= args.start:
        raise UsageError("--to must be after --from")
    options = ReplayOptions(window=Window(epoch_ms(args.start), epoch_ms(end)), sites=tuple(args.site),
                            group_id=args.group_id, given_to=args.end is not None, dry_run=args.dry_run,
                            progress=args.progress, metrics_textfile=args.metrics_textfile)
    log = logs.configure(settings.log, "replay")
    stop = StopSignal().install()
    return replay(settings, options, stop=stop, log=log, out=sys.stdout)
