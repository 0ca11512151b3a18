"""`raas gateway`: serve the OpenAI-compatible tiered gateway over HTTP."""

from __future__ import annotations

from pathlib import Path

import click

from raas.cli.ledger_location import LedgerLocation
from raas.ledger import open_ledger


@click.command()
@click.option(
    "--tiers",
    "tiers_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The tier file (YAML): upstreams, models, prices, timeouts, router policy.",
)
@click.option(
    "--db",
    "database",
    type=LedgerLocation(),
    default="raas.db",
    show_default=True,
    envvar="RAAS_DB",
    help="The ledger that model-call and handoff events go to (a file or postgresql:// URL).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A router model (`raas router train`); default: the tiers' configured success rates.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
def gateway(tiers_path: Path, database: str, model_path: Path | None, host: str, port: int) -> None:
    """Serve /v1/chat/completions and /v1/models, routing each request to a tier."""
    # Imported here: only this command needs the HTTP client and server.
    from raas.gateway import build_gateway, load_tier_file, serve

    tier_file = load_tier_file(tiers_path)
    with open_ledger(database) as ledger:
        app = build_gateway(tier_file, ledger, model_path)
        click.echo(
            f"raas gateway on http://{host}:{port}/v1 with tiers "
            f"{', '.join(tier.name for tier in tier_file.tiers)}; events to {database}",
            err=True,
        )
        serve(app, host, port)
