"""`darkroom provenance check FILE`: what a file says about where it came from (gpu/provenance.py).

It reads the C2PA manifest with c2pa's own Reader (validation state, claim generator, model, actions, signer) and
the invisible watermark Darkroom hides in images when the deployment turns it on, and prints both, or `--json`.

Exit status: 0 when the file carries a manifest that validates (Valid or Trusted) or Darkroom's watermark, 1 when it
carries neither (or only a manifest that fails validation), 2 when the file cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Read the C2PA content credentials and the watermark of Darkroom's outputs.",
                  no_args_is_help=True)
console = Console()

VALID_STATES = ("Valid", "Trusted")


def verdict(report: dict[str, Any]) -> bool:
    manifest = report.get("manifest", {})
    return (manifest.get("present") and manifest.get("validation_state") in VALID_STATES) or bool(
        report.get("watermark", {}).get("found"))


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="An image (png, jpeg, webp) or video (mp4).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    trust_anchors: Annotated[Path | None, typer.Option(
        help="PEM root certificates to trust (e.g. .darkroom/provenance/root.pem for `darkroom dev`'s outputs): a "
             "manifest they vouch for is Trusted, not just Valid.")] = None,
) -> None:
    """Check FILE's C2PA manifest and Darkroom's invisible watermark. Exits 1 when it carries neither."""
    try:
        data = file.read_bytes()
        anchors = trust_anchors.read_text() if trust_anchors else None
    except OSError as exc:
        console.print(f"[red]cannot read[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    try:
        from gpu import provenance
    except ImportError as exc:  # pragma: no cover - the dev install has them (gpu/requirements.txt)
        console.print(f"[red]needs c2pa-python and invisible-watermark[/] (gpu/requirements.txt): {exc}")
        raise typer.Exit(2) from None
    report = provenance.check(data, trust_anchors=anchors)
    report["file"] = str(file)
    ok = verdict(report)
    if as_json:
        typer.echo(json.dumps(report | {"ok": ok}, indent=2))
    else:
        _print(report)
    raise typer.Exit(0 if ok else 1)


def _print(report: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(report['file'])}[/] ({report['format'] or 'unknown format'})")
    manifest = report["manifest"]
    if not manifest.get("present"):
        why = f": {manifest['error']}" if manifest.get("error") else ""
        console.print(f"  C2PA manifest  [yellow]none[/]{escape(why)}")
    else:
        state = manifest.get("validation_state")
        colour = "green" if state in VALID_STATES else "red"
        console.print(f"  C2PA manifest  [{colour}]{escape(str(state))}[/]")
        console.print(f"    generator    {escape(manifest.get('claim_generator') or '-')}")
        console.print(f"    model        {escape(manifest.get('model') or '-')}")
        for action in manifest.get("actions", []):
            source = action.get("digitalSourceType", "").rsplit("/", 1)[-1]
            console.print(f"    action       {escape(action['action'])}"
                          f"{' (' + escape(source) + ')' if source else ''}  {escape(action.get('when', ''))}")
        for ingredient in manifest.get("ingredients", []):
            console.print(f"    ingredient   {escape(str(ingredient['title']))} ({escape(str(ingredient['relationship']))})")
        signer = manifest.get("signer", {})
        console.print(f"    signer       {escape(signer.get('common_name', '-'))}, issued by "
                      f"{escape(signer.get('issuer', '-'))} ({escape(signer.get('alg', '-'))})")
        if manifest.get("issues"):
            console.print(f"    issues       {escape(', '.join(manifest['issues']))}")
        if "signingCredential.untrusted" in manifest.get("issues", []):
            console.print("                 (the signature holds, but no trust anchor vouches for the signer: "
                          "pass --trust-anchors)")
    watermark = report["watermark"]
    if watermark.get("found"):
        console.print(f"  watermark      [green]Darkroom[/] ({watermark['bit_errors']} of 64 bits differ)")
    elif watermark.get("checked"):
        console.print(f"  watermark      [yellow]none[/] (decoded {watermark['payload']}, {watermark['bit_errors']} "
                      "of 64 bits differ from Darkroom's)")
    else:
        console.print(f"  watermark      not checked: {escape(watermark.get('reason', ''))}")
